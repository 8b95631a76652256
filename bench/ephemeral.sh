#!/usr/bin/env bash
# The ephemeral-runner scenario of issue 16: a CI runner that starts with an empty
# root and a registry cache filled by an earlier run, then pushes the image (to the
# registry that holds the cache) or writes an OCI tarball. kiln beside BuildKit
# (--import-cache/--export-cache) when buildctl answers at $BUILDKIT_HOST, and
# buildah (build --layers --cache-to/--cache-from REPO, then buildah push).
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
# BUILDAH_RUNTIME  buildah's OCI runtime (default /usr/sbin/runc, as the shared runner);
#             buildah is skipped when it or the runtime is missing
# OUT         where tarballs, roots and the results go (default /var/tmp/kiln-bench-ephemeral);
#             the roots and tarballs are removed at the end
# JSONL       the result lines for bench/table.py (default $OUT/results.jsonl)
#
# Figures per workload, seconds, median of RUNS:
#   warm-oci        the root that filled the cache (a warm laptop), OCI tarball
#   ephemeral-oci   an empty root, --cache-from the registry, OCI tarball
#   ephemeral-push  an empty root, --cache-from the registry, --push to that registry
# For BuildKit "ephemeral" is after `buildctl prune --all` (its daemon stays up, so
# it starts warmer than a fresh runner would). For buildah it is a new --root and
# --runroot; its build and its push (oci-archive: or docker://) are timed together.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KILN=${KILN:-bin/kiln}
KILN=$(realpath "$KILN")
WORK=${WORK:-/var/tmp/kiln-bench}
WORKLOADS=${WORKLOADS:-W2 W5}
REG=${REG:-127.0.0.1:5000}
RUNS=${RUNS:-3}
A=${ANCHORS_DIR:-/var/tmp/kiln-anchors}
BUILDCTL=${BUILDCTL:-$A/bin/buildctl}
BUILDAH_RUNTIME=${BUILDAH_RUNTIME:-/usr/sbin/runc}
OUT=${OUT:-/var/tmp/kiln-bench-ephemeral}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
JSONL=${JSONL:-$OUT/results.jsonl}
SOURCE=ephemeral
RESULTS=$OUT/results.tsv
: > "$RESULTS"
: > "$JSONL"

. "$HERE/lib.sh" # timed, median, measure, na, wipe, buildkitd_pid

SCENARIOS=(warm-oci ephemeral-oci ephemeral-push)
label() { # the table's scenario name of a figure
  case $1 in
    warm-oci) echo "ephemeral warm-oci" ;;
    ephemeral-oci) echo "ephemeral cache-from oci" ;;
    ephemeral-push) echo "ephemeral cache-from push" ;;
  esac
}

bk=false bkwhy= bkpid=
if [ -n "${BUILDKIT_HOST:-}" ] && [ -x "$BUILDCTL" ] && "$BUILDCTL" debug workers >/dev/null 2>&1; then
  bk=true
  bkpid=$(buildkitd_pid)
else
  bkwhy="no buildctl answering at BUILDKIT_HOST=${BUILDKIT_HOST:-unset} (run ../shared/bench/setup-buildkit.sh)"
  echo "BuildKit not measured: $bkwhy" >&2
fi
bah=false bahwhy=
if command -v buildah >/dev/null && [ -x "$BUILDAH_RUNTIME" ]; then
  bah=true
else
  bahwhy="no buildah or no $BUILDAH_RUNTIME"
  echo "buildah not measured: $bahwhy" >&2
fi

# buildah's two stores, each its own --root and --runroot (removed by bah_wipe).
BAH_RUN=/run/kiln-bench-ephemeral-buildah
bah_warm=(buildah --root "$OUT/buildah-warm" --runroot "$BAH_RUN-warm" --storage-driver overlay)
bah_eph=(buildah --root "$OUT/buildah-eph" --runroot "$BAH_RUN-eph" --storage-driver overlay)
bah_wipe() { # bah_wipe warm|eph: an empty disk again
  if [ -d "$OUT/buildah-$1" ]; then
    buildah --root "$OUT/buildah-$1" --runroot "$BAH_RUN-$1" --storage-driver overlay rm -a >/dev/null 2>&1 || true
  fi
  wipe "$OUT/buildah-$1" "$BAH_RUN-$1"
}
cleanup() {
  bah_wipe warm
  bah_wipe eph
  wipe "$OUT"/root-warm-* "$OUT/root-ephemeral"
  rm -f "$OUT"/*.tar
}
trap cleanup EXIT

report() { # report WORKLOAD BUILDER FIGURE
  local n=$1-$2-$(label "$3" | tr ' ' -)
  [ -s "$OUT/$n.times" ] || return 0
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(median "$n")" "$(paste -sd, "$OUT/$n.times")" | tee -a "$RESULTS"
}

for w in $WORKLOADS; do
  dir=$WORK/$w
  [ -f "$dir/Dockerfile" ] || { echo "$dir/Dockerfile missing: python3 ../shared/bench/gen.py --out $WORK" >&2; exit 1; }
  rm -f "$OUT/$w"-*.times "$OUT/$w"-*.rss
  lw=$(echo "$w" | tr 'A-Z' 'a-z')
  cache=$REG/kiln-ephemeral/$lw:cache
  app=$REG/kiln-ephemeral/$lw:app
  warm=$OUT/root-warm-$w
  eph=$OUT/root-ephemeral
  kb=("$KILN" build --progress quiet -f "$dir/Dockerfile" "$dir")

  # The earlier run that fills the cache (and the warm root).
  wipe "$warm"
  timed "$w-kiln-fill" "${kb[@]}" --root "$warm" --cache-to "type=registry,ref=$cache,mode=max" -o "type=oci,dest=$OUT/fill.tar"
  for r in $(seq "$RUNS"); do
    export ROUND=$r
    measure "$w" "$(label warm-oci)" kiln "${kb[@]}" --root "$warm" -o "type=oci,dest=$OUT/warm.tar"
    wipe "$eph"
    measure "$w" "$(label ephemeral-oci)" kiln "${kb[@]}" --root "$eph" --cache-from "type=registry,ref=$cache" -o "type=oci,dest=$OUT/eph.tar"
    wipe "$eph"
    measure "$w" "$(label ephemeral-push)" kiln "${kb[@]}" --root "$eph" --cache-from "type=registry,ref=$cache" -t "$app" --push
  done
  wipe "$eph" "$warm"

  if $bk; then
    bcache=$REG/buildkit-ephemeral/$lw:cache
    bapp=$REG/buildkit-ephemeral/$lw:app
    bb=("$BUILDCTL" build --frontend dockerfile.v0 --local context="$dir" --local dockerfile="$dir" --opt filename=Dockerfile)
    "$BUILDCTL" prune --all > /dev/null
    if timed "$w-buildkit-fill" "${bb[@]}" --export-cache "type=registry,ref=$bcache,mode=max,registry.insecure=true" \
      --output "type=oci,dest=$OUT/bk-fill.tar"; then
      # Warm first: after an import BuildKit's records are lazy, and a "warm" build
      # then pulls what the import left remote (a first run measured 11 s on W5).
      for r in $(seq "$RUNS"); do
        ROUND=$r RSS_PID=$bkpid measure "$w" "$(label warm-oci)" buildkit "${bb[@]}" --output "type=oci,dest=$OUT/bk-warm.tar" || break
      done
      for r in $(seq "$RUNS"); do
        "$BUILDCTL" prune --all > /dev/null
        ROUND=$r RSS_PID=$bkpid measure "$w" "$(label ephemeral-oci)" buildkit "${bb[@]}" \
          --import-cache "type=registry,ref=$bcache,registry.insecure=true" --output "type=oci,dest=$OUT/bk-eph.tar" || break
        "$BUILDCTL" prune --all > /dev/null
        ROUND=$r RSS_PID=$bkpid measure "$w" "$(label ephemeral-push)" buildkit "${bb[@]}" \
          --import-cache "type=registry,ref=$bcache,registry.insecure=true" \
          --output "type=image,name=$bapp,push=true,registry.insecure=true" || break
      done
    else
      for f in "${SCENARIOS[@]}"; do na "$w" "$(label "$f")" buildkit "the build that fills the cache failed: $(tail -1 "$OUT/last.log")"; done
    fi
    "$BUILDCTL" prune --all > /dev/null
  else
    for f in "${SCENARIOS[@]}"; do na "$w" "$(label "$f")" buildkit "$bkwhy"; done
  fi

  if $bah; then
    tag=localhost/kiln-ephemeral-$lw:latest
    bcache=$REG/buildah-ephemeral/$lw-cache
    bapp=docker://$REG/buildah-ephemeral/$lw:app
    bbuild=(build --layers --tls-verify=false --network=host --runtime "$BUILDAH_RUNTIME" -f "$dir/Dockerfile" -t "$tag")
    bah_wipe warm
    if timed "$w-buildah-fill" "${bah_warm[@]}" "${bbuild[@]}" --cache-to "$bcache" "$dir"; then
      for r in $(seq "$RUNS"); do
        export ROUND=$r
        measure "$w" "$(label warm-oci)" buildah "${bah_warm[@]}" "${bbuild[@]}" "$dir" ++ \
          "${bah_warm[@]}" push --tls-verify=false -q "$tag" "oci-archive:$OUT/bah-warm.tar" || break
        rm -f "$OUT/bah-warm.tar"
      done
      for r in $(seq "$RUNS"); do
        export ROUND=$r
        bah_wipe eph
        measure "$w" "$(label ephemeral-oci)" buildah "${bah_eph[@]}" "${bbuild[@]}" --cache-from "$bcache" "$dir" ++ \
          "${bah_eph[@]}" push --tls-verify=false -q "$tag" "oci-archive:$OUT/bah-eph.tar" || break
        rm -f "$OUT/bah-eph.tar"
        bah_wipe eph
        measure "$w" "$(label ephemeral-push)" buildah "${bah_eph[@]}" "${bbuild[@]}" --cache-from "$bcache" "$dir" ++ \
          "${bah_eph[@]}" push --tls-verify=false -q "$tag" "$bapp" || break
      done
    else
      for f in "${SCENARIOS[@]}"; do na "$w" "$(label "$f")" buildah "the build that fills the cache failed: $(tail -1 "$OUT/last.log")"; done
    fi
    bah_wipe warm
    bah_wipe eph
  else
    for f in "${SCENARIOS[@]}"; do na "$w" "$(label "$f")" buildah "$bahwhy"; done
  fi

  for b in kiln buildkit buildah; do
    for f in "${SCENARIOS[@]}"; do
      report "$w" "$b" "$f"
    done
  done
done
echo "results (workload, builder, figure, median s, runs): $RESULTS; result lines: $JSONL"
python3 "$HERE/table.py" "$JSONL"
