# Helpers of the bench scripts, sourced by them. $OUT is where they keep times.

# timed NAME CMD...: runs CMD (its output in $OUT/last.log, shown if it fails) and
# appends its wall time in seconds to $OUT/NAME.times.
timed() {
  local name=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$@" > "$OUT/last.log" 2>&1 || { echo "$name failed:" >&2; tail -20 "$OUT/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc >> "$OUT/$name.times"
}

# median NAME: the median of $OUT/NAME.times, in milliseconds' precision.
median() {
  sort -n "$OUT/$1.times" | awk '{a[NR]=$1} END {printf "%.3f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
