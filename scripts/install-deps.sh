#!/usr/bin/env bash
# Installs what kiln's tests and demo use, from Debian's packages, when missing:
# busybox-static (test base images), docker-registry (end-to-end push/pull), skopeo and
# umoci (checking outputs with real clients), tmux (the terminal view tests), runc (the
# unprivileged-container test of rootless kiln), uidmap (newuidmap/newgidmap for
# rootless builds). Idempotent and quiet when all is there.
set -euo pipefail
need=()
for p in busybox-static docker-registry skopeo umoci tmux runc uidmap; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing packages: ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
