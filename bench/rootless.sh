#!/usr/bin/env bash
# Rootless kiln against root kiln on the shared workloads W1, W2 and W5
# (../shared/bench/gen.py): each build cold (empty store, base pulled from the anchors'
# registry on 127.0.0.1:5000) and warm (the same build again on that store), OCI
# tarball output, RUNS times alternating root and rootless; prints the medians and
# the ratio rootless/root. Rootless is a temporary user with subordinate ids
# (removed at the end, with its ranges and files). Run as root: make bench-rootless.
#
#   KILN=bin/kiln RUNS=3 WORKLOADS="W1 W2 W5" bench/rootless.sh
set -euo pipefail
KILN=${KILN:-bin/kiln}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-W1 W2 W5}
SHARED=${SHARED:-../shared}
BASE=${BENCH_ROOTLESS_DIR:-/var/tmp/kiln-bench-rootless}
USER_NAME=kilnbench$$

[ "$(id -u)" = 0 ] || { echo "bench/rootless.sh needs root (it creates the rootless user)" >&2; exit 1; }
"$SHARED/bench/setup-anchors.sh" >/dev/null
rm -rf "$BASE"
mkdir -p "$BASE"
chmod 755 "$BASE"
python3 "$SHARED/bench/gen.py" --out "$BASE/work" --only "$(echo "$WORKLOADS" | tr ' ' ,)" >/dev/null
cp "$KILN" "$BASE/kiln"
chmod 755 "$BASE/kiln"

cleanup() {
  userdel --remove --force "$USER_NAME" >/dev/null 2>&1 || true
  rm -rf "$BASE"
}
trap cleanup EXIT
useradd --create-home --home-dir "$BASE/home" --shell /bin/sh --user-group "$USER_NAME"
if ! grep -q "^$USER_NAME:" /etc/subuid 2>/dev/null; then
  usermod --add-subuids 500000-565535 --add-subgids 500000-565535 "$USER_NAME"
fi
chmod -R a+rX "$BASE/work"
mkdir -p "$BASE/out"
chown "$USER_NAME:" "$BASE/out"
uid=$(id -u "$USER_NAME")
gid=$(id -g "$USER_NAME")

# build MODE STORE W: one build; prints its wall time in seconds.
build() {
  local mode=$1 store=$2 w=$3 out=$BASE/out/$1-$3.tar
  local cmd=("$BASE/kiln" build --root "$store" --progress quiet -f "$BASE/work/$w/Dockerfile" -o "type=oci,dest=$out" "$BASE/work/$w")
  if [ "$mode" = rootless ]; then
    cmd=(setpriv --reuid "$uid" --regid "$gid" --init-groups -- env -i HOME="$BASE/home" USER="$USER_NAME" PATH=/usr/bin:/bin:/usr/sbin:/sbin "${cmd[@]}")
  fi
  local t0 t1
  t0=$(date +%s.%N)
  "${cmd[@]}" >"$BASE/last.log" 2>&1 || { echo "$mode build of $w failed:" >&2; tail -20 "$BASE/last.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.2f\n", $2-$1}'
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-4s %-5s %9s %9s %6s\n' load scen root rootless ratio
declare -A times
for w in $WORKLOADS; do
  for run in $(seq "$RUNS"); do
    for mode in root rootless; do
      store=$BASE/store-$mode
      rm -rf "$store"
      if [ "$mode" = rootless ]; then
        mkdir -p "$store" && chown "$USER_NAME:" "$store"
      fi
      times[$w,cold,$mode]+=" $(build "$mode" "$store" "$w")"
      times[$w,warm,$mode]+=" $(build "$mode" "$store" "$w")"
      rm -rf "$store"
    done
  done
  for scen in cold warm; do
    r=$(echo "${times[$w,$scen,root]}" | median)
    u=$(echo "${times[$w,$scen,rootless]}" | median)
    printf '%-4s %-5s %9s %9s %6s\n' "$w" "$scen" "$r" "$u" "$(echo "$u $r" | awk '{printf "%.2f", $1/$2}')"
  done
done
echo "medians of $RUNS runs, seconds, build + OCI tarball export; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
