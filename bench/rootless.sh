#!/usr/bin/env bash
# Rootless against root on the shared workloads W1, W2 and W5 (../shared/bench/gen.py),
# kiln and buildah: each build cold (empty store, base pulled from the anchors'
# registry on 127.0.0.1:5000) and warm (the same build again on that store), OCI
# tarball output, RUNS times alternating root and rootless; prints the medians and
# the ratio rootless/root. Rootless is a temporary user with subordinate ids
# (removed at the end, with its ranges and files). Run as root: make bench-rootless.
# BuildKit is not measured: rootless BuildKit is a buildkitd the user starts under
# rootlesskit, and this script starts no daemon (its cells say so).
#
#   KILN=bin/kiln RUNS=3 WORKLOADS="W1 W2 W5" bench/rootless.sh
#
# buildah runs as the shared runner's (build --layers, runc, overlay, host network,
# then buildah push to oci-archive:, both timed), as root and as the user; skipped
# when it or $BUILDAH_RUNTIME is missing. JSONL: the result lines for bench/table.py
# (default /var/tmp/kiln-bench-results-rootless/results.jsonl).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KILN=${KILN:-bin/kiln}
RUNS=${RUNS:-3}
WORKLOADS=${WORKLOADS:-W1 W2 W5}
SHARED=${SHARED:-../shared}
BASE=${BENCH_ROOTLESS_DIR:-/var/tmp/kiln-bench-rootless}
BUILDAH_RUNTIME=${BUILDAH_RUNTIME:-/usr/sbin/runc}
JSONL=${JSONL:-/var/tmp/kiln-bench-results-rootless/results.jsonl}
USER_NAME=kilnbench$$
SOURCE=rootless
OUT=$BASE # lib.sh's logs and times

[ "$(id -u)" = 0 ] || { echo "bench/rootless.sh needs root (it creates the rootless user)" >&2; exit 1; }
. "$HERE/lib.sh" # timed, measure, na, wipe
mkdir -p "$(dirname "$JSONL")"
: > "$JSONL"

made_user=false
cleanup() {
  if $made_user; then
    # buildah and podman run as the user without XDG_RUNTIME_DIR keep their run
    # state in /var/tmp/{containers-user,podman-run}-UID, which userdel leaves.
    local uid
    if uid=$(id -u "$USER_NAME" 2>/dev/null); then
      wipe "/var/tmp/containers-user-$uid" "/var/tmp/podman-run-$uid"
    fi
    userdel --remove --force "$USER_NAME" >/dev/null 2>&1 || true
    # userdel drops the user's subordinate ranges; make sure
    sed -i "/^$USER_NAME:/d" /etc/subuid /etc/subgid 2>/dev/null || true
  fi
  wipe "$BASE"
}
trap cleanup EXIT

"$SHARED/bench/setup-anchors.sh" >/dev/null
wipe "$BASE"
mkdir -p "$BASE"
chmod 755 "$BASE"
python3 "$SHARED/bench/gen.py" --out "$BASE/work" --only "$(echo "$WORKLOADS" | tr ' ' ,)" >/dev/null
cp "$KILN" "$BASE/kiln"
# Its RUN steps' init, when installed beside it (make build puts it there).
[ ! -e "$(dirname "$KILN")/kiln-init" ] || cp "$(dirname "$KILN")/kiln-init" "$BASE/kiln-init"
chmod 755 "$BASE"/kiln*

made_user=true # before: a half-made user is removed too
useradd --create-home --home-dir "$BASE/home" --shell /bin/sh --user-group "$USER_NAME"
if ! grep -q "^$USER_NAME:" /etc/subuid 2>/dev/null; then
  usermod --add-subuids 500000-565535 --add-subgids 500000-565535 "$USER_NAME"
fi
chmod -R a+rX "$BASE/work"
mkdir -p "$BASE/out"
chown "$USER_NAME:" "$BASE/out"
uid=$(id -u "$USER_NAME")
gid=$(id -g "$USER_NAME")
as_user=(setpriv --reuid "$uid" --regid "$gid" --init-groups -- env -i HOME="$BASE/home" USER="$USER_NAME" PATH=/usr/bin:/bin:/usr/sbin:/sbin)

bah=false
if command -v buildah >/dev/null && [ -x "$BUILDAH_RUNTIME" ]; then bah=true; fi
if command -v rootlesskit >/dev/null; then
  bkwhy="not measured: rootless BuildKit needs a buildkitd started by the user under rootlesskit, and this script starts no daemon"
else
  bkwhy="no rootlesskit here (rootless BuildKit runs buildkitd under it as the user)"
fi

# build MODE BUILDER STORE W SCEN: one build as root or as the user (row and times
# via measure); returns its status.
build() {
  local mode=$1 b=$2 store=$3 w=$4 scen=$5 out=$BASE/out/$1-$2-$4.tar pre=() cmd g
  local tag=localhost/kiln-rootless-${w,,}
  if [ "$mode" = rootless ]; then pre=("${as_user[@]}"); fi
  if [ "$b" = kiln ]; then
    cmd=("${pre[@]}" "$BASE/kiln" build --root "$store" --progress quiet -f "$BASE/work/$w/Dockerfile" -o "type=oci,dest=$out" "$BASE/work/$w")
  else
    g=(buildah --root "$store" --runroot "$store-run" --storage-driver overlay)
    cmd=("${pre[@]}" "${g[@]}" build --layers --tls-verify=false --network=host --runtime "$BUILDAH_RUNTIME"
      -f "$BASE/work/$w/Dockerfile" -t "$tag" "$BASE/work/$w"
      ++ "${pre[@]}" "${g[@]}" push --tls-verify=false -q "$tag" "oci-archive:$out")
    rm -f "$out"
  fi
  ROW_FIELDS="mode=$mode" measure "$w" "rootless $scen" "$b" "${cmd[@]}"
}

# fresh MODE STORE: an empty store (and buildah's runroot beside it) the mode can write
fresh() {
  wipe "$2" "$2-run"
  if [ "$1" = rootless ]; then
    mkdir -p "$2" "$2-run"
    chown "$USER_NAME:" "$2" "$2-run"
  fi
}

median_of() { # median_of NAME: the median of $OUT/NAME.times, or nothing
  [ -s "$OUT/$1.times" ] && sort -n "$OUT/$1.times" | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'
}

for w in $WORKLOADS; do
  declare -A bah_w=([root]=$bah [rootless]=$bah) # false after a failure, per mode
  for run in $(seq "$RUNS"); do
    export ROUND=$run
    for mode in root rootless; do
      store=$BASE/store-$mode
      fresh "$mode" "$store"
      build "$mode" kiln "$store" "$w" cold
      build "$mode" kiln "$store" "$w" warm
      fresh "$mode" "$store"
      if ${bah_w[$mode]}; then
        # a buildah failure is a failed cell, not the end of the script
        if build "$mode" buildah "$store" "$w" cold; then
          build "$mode" buildah "$store" "$w" warm || bah_w[$mode]=false
        else
          bah_w[$mode]=false
        fi
        fresh "$mode" "$store"
      fi
      wipe "$store" "$store-run"
    done
  done
  for scen in cold warm; do
    na "$w" "rootless $scen" buildkit "$bkwhy"
    $bah || na "$w" "rootless $scen" buildah "no buildah or no $BUILDAH_RUNTIME"
  done
done

printf '%-4s %-5s %-8s %9s %9s %6s\n' load scen builder root rootless ratio
for w in $WORKLOADS; do
  for scen in cold warm; do
    for b in kiln buildah; do
      r=$(median_of "$w-$b-rootless-$scen-mode-root" || true)
      u=$(median_of "$w-$b-rootless-$scen-mode-rootless" || true)
      [ -n "$r" ] || [ -n "$u" ] || continue
      printf '%-4s %-5s %-8s %9s %9s %6s\n' "$w" "$scen" "$b" "${r:--}" "${u:--}" \
        "$( [ -n "$r" ] && [ -n "$u" ] && echo "$u $r" | awk '{printf "%.2f", $1/$2}' || echo -)"
    done
  done
done
echo "medians of $RUNS runs, seconds, build + OCI tarball export; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$HERE/table.py" "$JSONL"
