#!/usr/bin/env bash
# The multi-platform scenario of issue 18: a cross-compiling Dockerfile (a stage on
# $BUILDPLATFORM shared by every target, a per-target step, a final stage per
# platform with a RUN that runs under qemu for arm64) built for linux/amd64 and
# linux/arm64 into one OCI index, cold, kiln beside BuildKit when buildctl answers.
#
#   make bench-multiplatform        (or: bench/multiplatform.sh, with the variables below)
#
# KILN        the kiln binary (default bin/kiln)
# REG         the registry the two-platform base is pushed to (default 127.0.0.1:5000)
# RUNS        runs per figure, the median is reported (default 3)
# LOOP        iterations of the shared stage's shell loop (default 300000)
# BUILDCTL, BUILDKIT_HOST   BuildKit's client and daemon (setup-buildkit.sh)
# OUT         scratch and results (default /var/tmp/kiln-bench-multiplatform)
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
OUT=${OUT:-/var/tmp/kiln-bench-multiplatform}
rm -rf "$OUT"
mkdir -p "$OUT/ctx"

bk=false
if [ -n "${BUILDKIT_HOST:-}" ] && [ -x "$BUILDCTL" ] && "$BUILDCTL" debug workers >/dev/null 2>&1; then
  bk=true
else
  echo "BuildKit not measured: no buildctl answering at BUILDKIT_HOST=${BUILDKIT_HOST:-unset} (run ../shared/bench/setup-buildkit.sh)" >&2
fi

# The two-platform base, from Debian's busybox-static and busybox-static:arm64.
go run ./internal/cmd/mkbase -multiplatform "$OUT/base"
skopeo copy --quiet --all --dest-tls-verify=false "oci:$OUT/base" "docker://$REG/busybox-mp:latest"

mounted=false
registered=false
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  mounted=true
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  "$KILN" binfmt install arm64 >/dev/null
  registered=true
fi
cleanup() {
  if $registered; then "$KILN" binfmt remove arm64 >/dev/null || true; fi
  if $mounted; then umount /proc/sys/fs/binfmt_misc || true; fi
}
trap cleanup EXIT

cat > "$OUT/ctx/Dockerfile" <<DF
FROM --platform=\$BUILDPLATFORM $REG/busybox-mp AS build
RUN i=0; while [ \$i -lt $LOOP ]; do i=\$((i+1)); done; echo built > /artifact
ARG TARGETARCH
RUN echo "\$TARGETARCH" > /arch

FROM $REG/busybox-mp
COPY --from=build /artifact /arch /
RUN uname -m > /uname && cat /arch /artifact /uname > /out
DF

. "$HERE/lib.sh" # timed, median

for _ in $(seq "$RUNS"); do
  rm -rf "$OUT/root"
  timed kiln "$KILN" build --root "$OUT/root" --progress quiet --platform linux/amd64,linux/arm64 \
    -o "type=oci,dest=$OUT/kiln.tar" "$OUT/ctx"
  if $bk; then
    "$BUILDCTL" prune --all >/dev/null
    timed buildkit "$BUILDCTL" build --progress plain --frontend dockerfile.v0 \
      --local context="$OUT/ctx" --local dockerfile="$OUT/ctx" \
      --opt platform=linux/amd64,linux/arm64 --output "type=oci,dest=$OUT/buildkit.tar"
  fi
done
printf 'builder\tcold two-platform build (s, median of %s)\truns\n' "$RUNS"
printf 'kiln\t%s\t%s\n' "$(median kiln)" "$(paste -sd' ' "$OUT/kiln.times")"
if $bk; then
  printf 'buildkit\t%s\t%s\n' "$(median buildkit)" "$(paste -sd' ' "$OUT/buildkit.times")"
fi
