#!/usr/bin/env bash
# Host packages for building and booting the image (make image / test-image / test-fleet).
# Idempotent: installs only what is missing.
set -euo pipefail
packages=(mmdebstrap squashfs-tools dosfstools mtools fdisk qemu-utils qemu-system-x86 ovmf
  systemd-container ansible vagrant)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "image: installing ${missing[*]}" >&2
apt-get update -qq
# Some machines carry a newer qemu-utils from backports that breaks the release's
# qemu-system; both then come from the release.
for p in "${missing[@]}"; do
  [ "$p" = qemu-system-x86 ] && missing+=(qemu-utils/bookworm)
done
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --allow-downgrades \
  "${missing[@]}" >/dev/null
