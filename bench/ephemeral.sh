#!/usr/bin/env bash
# The ephemeral-runner scenario of issue 16: a CI runner that starts with an empty
# root and a registry cache filled by an earlier run, then pushes the image (to the
# registry that holds the cache) or writes an OCI tarball. kiln beside BuildKit
# (--import-cache/--export-cache) when buildctl answers at $BUILDKIT_HOST.
#
#   make bench-ephemeral            (or: bench/ephemeral.sh, with the variables below)
#
# KILN        the kiln binary (default bin/kiln)
# WORK        the workloads of ../shared/bench/gen.py (default /var/tmp/kiln-bench)
# WORKLOADS   which of them (default "W2 W5")
# REG         the registry (default 127.0.0.1:5000, from setup-anchors.sh)
# RUNS        runs per figure, the median is reported (default 3)
# BUILDCTL, BUILDKIT_HOST   BuildKit's client and daemon (setup-buildkit.sh prints
#             BUILDKIT_HOST); BuildKit is skipped when buildctl does not answer
# OUT         where tarballs, roots and the results go (default /var/tmp/kiln-bench-ephemeral)
#
# Figures per workload, seconds, median of RUNS:
#   warm-oci        kiln on the root that filled the cache (a warm laptop), OCI tarball
#   ephemeral-oci   an empty root, --cache-from the registry, OCI tarball
#   ephemeral-push  an empty root, --cache-from the registry, --push to that registry
# For BuildKit "ephemeral" is after `buildctl prune --all` (its daemon stays up, so
# it starts warmer than a fresh runner would).
set -euo pipefail
KILN=${KILN:-bin/kiln}
KILN=$(realpath "$KILN")
WORK=${WORK:-/var/tmp/kiln-bench}
WORKLOADS=${WORKLOADS:-W2 W5}
REG=${REG:-127.0.0.1:5000}
RUNS=${RUNS:-3}
A=${ANCHORS_DIR:-/var/tmp/kiln-anchors}
BUILDCTL=${BUILDCTL:-$A/bin/buildctl}
OUT=${OUT:-/var/tmp/kiln-bench-ephemeral}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: > "$RESULTS"

bk=false
if [ -n "${BUILDKIT_HOST:-}" ] && [ -x "$BUILDCTL" ] && "$BUILDCTL" debug workers >/dev/null 2>&1; then
  bk=true
else
  echo "BuildKit not measured: no buildctl answering at BUILDKIT_HOST=${BUILDKIT_HOST:-unset} (run ../shared/bench/setup-buildkit.sh)" >&2
fi

. "$(dirname "$0")/lib.sh" # timed, median

report() { # report WORKLOAD BUILDER FIGURE
  local n=$1-$2-$3
  [ -s "$OUT/$n.times" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(median "$n")" "$(paste -sd, "$OUT/$n.times")" | tee -a "$RESULTS"
}

for w in $WORKLOADS; do
  dir=$WORK/$w
  [ -f "$dir/Dockerfile" ] || { echo "$dir/Dockerfile missing: python3 ../shared/bench/gen.py --out $WORK" >&2; exit 1; }
  rm -f "$OUT/$w"-*.times
  lw=$(echo "$w" | tr 'A-Z' 'a-z')
  cache=$REG/kiln-ephemeral/$lw:cache
  app=$REG/kiln-ephemeral/$lw:app
  warm=$OUT/root-warm-$w
  eph=$OUT/root-ephemeral
  kb() { "$KILN" build --progress quiet -f "$dir/Dockerfile" "$@" "$dir"; }

  # The earlier run that fills the cache (and the warm root).
  rm -rf "$warm"
  kb --root "$warm" --cache-to "type=registry,ref=$cache,mode=max" -o "type=oci,dest=$OUT/fill.tar" > "$OUT/last.log" 2>&1
  for _ in $(seq "$RUNS"); do
    timed "$w-kiln-warm-oci" kb --root "$warm" -o "type=oci,dest=$OUT/warm.tar"
    rm -rf "$eph"
    timed "$w-kiln-ephemeral-oci" kb --root "$eph" --cache-from "type=registry,ref=$cache" -o "type=oci,dest=$OUT/eph.tar"
    rm -rf "$eph"
    timed "$w-kiln-ephemeral-push" kb --root "$eph" --cache-from "type=registry,ref=$cache" -t "$app" --push
  done
  rm -rf "$eph"

  if $bk; then
    bcache=$REG/buildkit-ephemeral/$lw:cache
    bapp=$REG/buildkit-ephemeral/$lw:app
    bb() {
      "$BUILDCTL" build --frontend dockerfile.v0 --local context="$dir" --local dockerfile="$dir" \
        --opt filename=Dockerfile "$@"
    }
    "$BUILDCTL" prune --all > /dev/null
    bb --export-cache "type=registry,ref=$bcache,mode=max,registry.insecure=true" \
      --output "type=oci,dest=$OUT/bk-fill.tar" > "$OUT/last.log" 2>&1
    # Warm first: after an import BuildKit's records are lazy, and a "warm" build
    # then pulls what the import left remote (a first run measured 11 s on W5).
    for _ in $(seq "$RUNS"); do
      timed "$w-buildkit-warm-oci" bb --output "type=oci,dest=$OUT/bk-warm.tar"
    done
    for _ in $(seq "$RUNS"); do
      "$BUILDCTL" prune --all > /dev/null
      timed "$w-buildkit-ephemeral-oci" bb --import-cache "type=registry,ref=$bcache,registry.insecure=true" \
        --output "type=oci,dest=$OUT/bk-eph.tar"
      "$BUILDCTL" prune --all > /dev/null
      timed "$w-buildkit-ephemeral-push" bb --import-cache "type=registry,ref=$bcache,registry.insecure=true" \
        --output "type=image,name=$bapp,push=true,registry.insecure=true"
    done
    "$BUILDCTL" prune --all > /dev/null
  fi

  for b in kiln buildkit; do
    for f in warm-oci ephemeral-oci ephemeral-push; do
      report "$w" "$b" "$f"
    done
  done
done
echo "results (workload, builder, figure, median s, runs): $RESULTS"
