# Helpers of the bench scripts, sourced by them. $OUT is where they keep times and
# logs; $JSONL (when set) the file their result lines go to (bench/table.py reads it),
# $SOURCE the name of the script's rows there (ephemeral, rootless, multiplatform).
LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# _run_one CMD...: runs CMD, its output appended to $OUT/last.log; its peak RSS (kB,
# from /usr/bin/time, which cannot run shell functions) appended to $OUT/last.rss.
_run_one() {
  if [ -z "${RSS_PID:-}" ] && [ -x /usr/bin/time ] && ! declare -F "$1" >/dev/null; then
    /usr/bin/time -f %M -a -o "$OUT/last.rss" "$@" >> "$OUT/last.log" 2>&1
  else
    "$@" >> "$OUT/last.log" 2>&1
  fi
}

# timed NAME CMD... [++ CMD...]: runs the commands one after the other (stopping at
# the first that fails; their output in $OUT/last.log, its tail shown on failure),
# appends their wall time in seconds to $OUT/NAME.times and the peak RSS in kB to
# $OUT/NAME.rss: the largest process's, or with RSS_PID set that process's VmHWM
# (reset before; buildkitd's). Sets T_S, T_RSS, T_RC; returns the status, so a bare
# call stops a `set -e` script and `timed ... || ...` lets it go on.
timed() {
  local name=$1 t0 t1 a cmd=()
  shift
  T_RC=0
  : > "$OUT/last.log"
  : > "$OUT/last.rss"
  if [ -n "${RSS_PID:-}" ]; then echo 5 > "/proc/$RSS_PID/clear_refs" 2>/dev/null || true; fi
  t0=$(date +%s.%N)
  for a in "$@" ++; do
    if [ "$a" != ++ ]; then
      cmd+=("$a")
      continue
    fi
    if [ "$T_RC" = 0 ] && [ ${#cmd[@]} -gt 0 ]; then _run_one "${cmd[@]}" || T_RC=$?; fi
    cmd=()
  done
  t1=$(date +%s.%N)
  T_S=$(echo "$t1 - $t0" | bc)
  if [ -n "${RSS_PID:-}" ]; then
    T_RSS=$(awk '/^VmHWM:/ {print $2}' "/proc/$RSS_PID/status" 2>/dev/null || true)
  else
    T_RSS=$(grep -E '^[0-9]+$' "$OUT/last.rss" | sort -n | tail -1 || true)
  fi
  if [ "$T_RC" != 0 ]; then
    echo "$name failed (rc $T_RC):" >&2
    tail -20 "$OUT/last.log" >&2
    return "$T_RC"
  fi
  echo "$T_S" >> "$OUT/$name.times"
  if [ -n "$T_RSS" ]; then echo "$T_RSS" >> "$OUT/$name.rss"; fi
}

# median NAME: the median of $OUT/NAME.times, in milliseconds' precision.
median() {
  sort -n "$OUT/$1.times" | awk '{a[NR]=$1} END {printf "%.3f", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}

# row WORKLOAD SCENARIO BUILDER [KEY=VALUE...]: the last timed's result as a line of
# $JSONL (nothing without JSONL).
row() {
  [ -n "${JSONL:-}" ] || return 0
  local w=$1 s=$2 b=$3 f
  shift 3
  f=(rc="$T_RC" total_s="$T_S" round="${ROUND:-1}")
  if [ -n "${T_RSS:-}" ]; then f+=(rss_kb="$T_RSS"); fi
  if [ "$T_RC" != 0 ]; then f+=(error="$(tail -5 "$OUT/last.log")"); fi
  python3 "$LIB_DIR/table.py" add "$JSONL" source="${SOURCE:-}" workload="$w" scenario="$s" builder="$b" "${f[@]}" "$@"
}

# na WORKLOAD SCENARIO BUILDER REASON: a cell that cannot be measured, and why.
na() {
  [ -n "${JSONL:-}" ] || return 0
  python3 "$LIB_DIR/table.py" add "$JSONL" source="${SOURCE:-}" workload="$1" scenario="$2" builder="$3" na="$4"
}

# measure WORKLOAD SCENARIO BUILDER CMD... [++ CMD...]: timed (as
# WORKLOAD-BUILDER-SCENARIO, spaces made dashes), then its row; returns its status.
# Extra row fields: $ROW_FIELDS, KEY=VALUE words (no spaces in them), e.g. mode=root;
# they end the times' name too (W1-kiln-rootless-cold-mode-root).
measure() {
  local w=$1 s=$2 b=$3 rc=0 f=${ROW_FIELDS:-}
  shift 3
  f=${f//[ =]/-}
  timed "$w-$b-${s// /-}${f:+-$f}" "$@" || rc=$?
  # shellcheck disable=SC2086
  row "$w" "$s" "$b" ${ROW_FIELDS:-}
  return "$rc"
}

# buildkitd_pid: the pid listening on $BUILDKIT_HOST's socket ($BUILDKITD_PID wins),
# for its peak RSS; empty when not found.
buildkitd_pid() {
  if [ -n "${BUILDKITD_PID:-}" ]; then echo "$BUILDKITD_PID"; return; fi
  ss -xlpn src "${BUILDKIT_HOST#unix://}" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\),.*/\1/p' | head -1
}

# wipe DIR...: unmounts whatever is still mounted under each DIR (a build killed
# half-way), then removes it.
wipe() {
  local d m
  for d in "$@"; do
    [ -n "$d" ] || continue
    if [ -e "$d" ]; then
      d=$(realpath "$d")
      awk -v r="$d/" 'index($2 "/", r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
      done
    fi
    rm -rf "$d"
  done
}
