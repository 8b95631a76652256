#!/usr/bin/env bash
# The multi-platform scenario of issue 18: a cross-compiling Dockerfile (a stage on
# $BUILDPLATFORM shared by every target, a per-target step, a final stage per
# platform with a RUN that runs under qemu for arm64) built for linux/amd64 and
# linux/arm64 into one OCI index, cold, kiln beside BuildKit when buildctl answers
# and buildah (build --platform ... --manifest, then manifest push --all to an OCI
# archive; it builds each platform on its own, the shared stage too).
#
#   make bench-multiplatform        (or: bench/multiplatform.sh, with the variables below)
#
# KILN        the kiln binary (default bin/kiln)
# REG         the registry the two-platform base is pushed to (default 127.0.0.1:5000)
# RUNS        runs per figure, the median is reported (default 3)
# LOOP        iterations of the shared stage's shell loop (default 300000)
# BUILDCTL, BUILDKIT_HOST   BuildKit's client and daemon (setup-buildkit.sh)
# BUILDAH_RUNTIME  buildah's OCI runtime (default /usr/sbin/runc); buildah is skipped
#             when it or the runtime is missing
# OUT         scratch and results (default /var/tmp/kiln-bench-multiplatform; the roots
#             and tarballs are removed at the end)
# JSONL       the result lines for bench/table.py (default $OUT/results.jsonl)
#
# arm64 RUN steps need qemu-user-static registered with binfmt_misc: the script
# registers it with `kiln binfmt install arm64` when it is not, and removes what it
# registered (and unmounts binfmt_misc if it mounted it) when it ends.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
KILN=$(realpath "${KILN:-bin/kiln}")
REG=${REG:-127.0.0.1:5000}
RUNS=${RUNS:-3}
LOOP=${LOOP:-300000}
A=${ANCHORS_DIR:-/var/tmp/kiln-anchors}
BUILDCTL=${BUILDCTL:-$A/bin/buildctl}
BUILDAH_RUNTIME=${BUILDAH_RUNTIME:-/usr/sbin/runc}
OUT=${OUT:-/var/tmp/kiln-bench-multiplatform}
. "$HERE/lib.sh" # timed, median, measure, na, wipe, buildkitd_pid
wipe "$OUT"
mkdir -p "$OUT/ctx"
OUT=$(realpath "$OUT")
JSONL=${JSONL:-$OUT/results.jsonl}
: > "$JSONL"
SOURCE=multiplatform
W=MP
SCEN="two-platform cold"

bk=false bkpid=
if [ -n "${BUILDKIT_HOST:-}" ] && [ -x "$BUILDCTL" ] && "$BUILDCTL" debug workers >/dev/null 2>&1; then
  bk=true
  bkpid=$(buildkitd_pid)
else
  why="no buildctl answering at BUILDKIT_HOST=${BUILDKIT_HOST:-unset} (run ../shared/bench/setup-buildkit.sh)"
  echo "BuildKit not measured: $why" >&2
  na "$W" "$SCEN" buildkit "$why"
fi
bah_ok=false
if command -v buildah >/dev/null && [ -x "$BUILDAH_RUNTIME" ]; then
  bah_ok=true
else
  na "$W" "$SCEN" buildah "no buildah or no $BUILDAH_RUNTIME"
fi
BAH_RUN=/run/kiln-bench-multiplatform-buildah
bah=(buildah --root "$OUT/buildah-root" --runroot "$BAH_RUN" --storage-driver overlay)
bah_wipe() {
  if [ -d "$OUT/buildah-root" ]; then "${bah[@]}" rm -a >/dev/null 2>&1 || true; fi
  wipe "$OUT/buildah-root" "$BAH_RUN"
}
mounted=false
registered=false
cleanup() {
  bah_wipe
  wipe "$OUT/root" "$OUT/base"
  rm -f "$OUT"/*.tar
  if $registered; then "$KILN" binfmt remove arm64 >/dev/null || true; fi
  if $mounted; then umount /proc/sys/fs/binfmt_misc || true; fi
}
trap cleanup EXIT

# The two-platform base, from Debian's busybox-static and busybox-static:arm64.
go run ./internal/cmd/mkbase -multiplatform "$OUT/base"
skopeo copy --quiet --all --dest-tls-verify=false "oci:$OUT/base" "docker://$REG/busybox-mp:latest"

if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  mounted=true
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  registered=true # before: a half-done install is removed too
  "$KILN" binfmt install arm64 >/dev/null
fi

cat > "$OUT/ctx/Dockerfile" <<DF
FROM --platform=\$BUILDPLATFORM $REG/busybox-mp AS build
RUN i=0; while [ \$i -lt $LOOP ]; do i=\$((i+1)); done; echo built > /artifact
ARG TARGETARCH
RUN echo "\$TARGETARCH" > /arch

FROM $REG/busybox-mp
COPY --from=build /artifact /arch /
RUN uname -m > /uname && cat /arch /artifact /uname > /out
DF

for r in $(seq "$RUNS"); do
  export ROUND=$r
  wipe "$OUT/root"
  measure "$W" "$SCEN" kiln "$KILN" build --root "$OUT/root" --progress quiet --platform linux/amd64,linux/arm64 \
    -o "type=oci,dest=$OUT/kiln.tar" "$OUT/ctx"
  if $bk; then
    "$BUILDCTL" prune --all >/dev/null
    RSS_PID=$bkpid measure "$W" "$SCEN" buildkit "$BUILDCTL" build --progress plain --frontend dockerfile.v0 \
      --local context="$OUT/ctx" --local dockerfile="$OUT/ctx" \
      --opt platform=linux/amd64,linux/arm64 --output "type=oci,dest=$OUT/buildkit.tar" || bk=false
  fi
  if $bah_ok; then
    bah_wipe
    measure "$W" "$SCEN" buildah "${bah[@]}" build --layers --tls-verify=false --network=host --runtime "$BUILDAH_RUNTIME" \
      --platform linux/amd64,linux/arm64 --manifest localhost/kiln-bench-mp "$OUT/ctx" ++ \
      "${bah[@]}" manifest push --all --tls-verify=false -q localhost/kiln-bench-mp "oci-archive:$OUT/buildah.tar" || bah_ok=false
  fi
done
if $bk; then "$BUILDCTL" prune --all >/dev/null; fi
printf 'builder\tcold two-platform build (s, median of %s)\truns\n' "$RUNS"
for b in kiln buildkit buildah; do
  n=$W-$b-${SCEN// /-}
  if [ -s "$OUT/$n.times" ]; then printf '%s\t%s\t%s\n' "$b" "$(median "$n")" "$(paste -sd' ' "$OUT/$n.times")"; fi
done
python3 "$HERE/table.py" "$JSONL"
