#!/usr/bin/env bash
# Installs what kiln's tests and demo use, from Debian's packages, when missing:
# busybox-static (test base images), docker-registry (end-to-end push/pull), skopeo,
# umoci and podman (checking outputs with real clients), tmux (the terminal view
# tests), runc (the unprivileged-container test of rootless kiln), uidmap
# (newuidmap/newgidmap for rootless builds), strace (which init RUN steps start, in
# the kiln-init test), qemu-user-static (the emulators a RUN on a foreign platform
# runs under, registered by `kiln binfmt install`), and the arm64 busybox-static binary of
# the multi-platform tests, extracted to $KILN_TESTDATA/busybox-arm64 (default
# /var/lib/kiln-testdata). Idempotent and quiet when all is there. It never registers
# a binfmt_misc interpreter: the tests that need one register it themselves and
# remove it afterwards.
set -euo pipefail
testdata=${KILN_TESTDATA:-/var/lib/kiln-testdata}
need=()
for p in busybox-static docker-registry skopeo umoci podman tmux runc uidmap strace qemu-user-static; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
need_arm64=0
[ -x "$testdata/busybox-arm64" ] || need_arm64=1
[ ${#need[@]} -eq 0 ] && [ $need_arm64 -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  arm=""
  [ $need_arm64 -eq 0 ] || arm=" $testdata/busybox-arm64"
  echo "missing:${need[*]:+ ${need[*]}}$arm; run scripts/install-deps.sh as root" >&2
  exit 1
fi
updated=0
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq
  updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ $need_arm64 -eq 1 ]; then
  echo "fetching busybox-static:arm64 into $testdata" >&2
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    updated=0
  fi
  [ $updated -eq 1 ] || apt-get update -qq
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq busybox-static:arm64 >/dev/null)
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/x"
  mkdir -p "$testdata"
  install -m 0755 "$tmp/x/bin/busybox" "$testdata/busybox-arm64.tmp"
  mv "$testdata/busybox-arm64.tmp" "$testdata/busybox-arm64"
fi
