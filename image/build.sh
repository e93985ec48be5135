#!/usr/bin/env bash
# make image: the zeroserve appliance, reproducibly (same commit, same mirror state → same
# sha256 for every output). Run as root. Outputs in $OUT (image/out/):
#   zeroserve-appliance.raw      GPT disk: ESP (systemd-boot, boot counting), root A, root B, data
#   zeroserve-appliance.qcow2    the same disk for qemu/libvirt
#   zeroserve-appliance.update.tar  update bundle for zeroserve-update (root.squashfs, kernel, initrd)
#   zeroserve-appliance.box      Vagrant libvirt box (the disk, with Vagrant's key for 'admin')
#   SHA256SUMS
set -euo pipefail
umask 022
export LC_ALL=C.UTF-8 TZ=UTC

REPO=$(cd "$(dirname "$0")/.." && pwd)
IMAGE="$REPO/image"
OUT=${OUT:-$IMAGE/out}
CACHE=${CACHE:-$IMAGE/out/cache}
source "$IMAGE/config.sh"
export SOURCE_DATE_EPOCH
WORK="$OUT/work"
ROOT="$WORK/rootfs"
NAME=zeroserve-appliance
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n1).$SOURCE_DATE_EPOCH"

log() { printf 'image: %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "image: must run as root (chroot, mounts)" >&2; exit 1; }
started=$SECONDS
mkdir -p "$OUT" "$CACHE/debs"

# 1. The wheel, exactly as users install it.
log "building the wheel"
rm -rf "$WORK"
mkdir -p "$WORK/wheel"
# The same interpreter as `maturin develop` in make setup, so both share the cargo cache.
# image/repro.sh builds a snapshot of the commit with the checkout's venv and cargo cache.
VENV=${VENV:-$REPO/.venv}
( cd "$REPO" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}" nice "$VENV/bin/maturin" \
    build --release --interpreter "$VENV/bin/python" --quiet --out "$WORK/wheel" >&2 )
wheel=$(ls "$WORK"/wheel/zeroserve-*.whl)

# 2. The Debian base, cached by its inputs; mmdebstrap is reproducible given SOURCE_DATE_EPOCH
# and the mirror's state, but for the SSH host keys openssh-server's postinst makes: they go
# (every appliance makes its own on first boot), so two bases from one mirror state are the same.
packages=$(grep -v -e '^#' -e '^$' "$IMAGE/packages.txt" | paste -sd, -)
base_cleanup='rm -f "$1"/etc/ssh/ssh_host_*'
key=$(printf '%s\n' "$SUITE" "$ARCH" "${MIRRORS[@]}" "$packages" "$BASE_EPOCH" "$base_cleanup" \
  | sha256sum | cut -c1-16)
base="$CACHE/base-$key.tar"
if [ ! -f "$base" ]; then
  log "mmdebstrap $SUITE ($key)"
  SOURCE_DATE_EPOCH=$BASE_EPOCH nice mmdebstrap --mode=root --format=tar --variant=minbase \
    --arch="$ARCH" --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/debs /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/debs" \
    --customize-hook="$base_cleanup" \
    "$SUITE" "$base.tmp" "${MIRRORS[@]}"
  mv "$base.tmp" "$base"
fi

# 3. The appliance root.
log "customizing the root"
mkdir -p "$ROOT"
tar -xf "$base" -C "$ROOT" --numeric-owner
# Owners, write bits and times from here, not from the checkout (git archive makes directories
# 0775: a group-writable / or /etc makes sshd refuse every key, StrictModes).
tar -C "$IMAGE/rootfs" -cf - --owner=0 --group=0 --numeric-owner --mode=go-w \
  --mtime="@$SOURCE_DATE_EPOCH" . | tar -xf - -C "$ROOT"
sed -i -e "s/@BOOT_TRIES@/$BOOT_TRIES/" -e "s/@KERNEL_CMDLINE@/$KERNEL_CMDLINE/" \
  "$ROOT/usr/sbin/zeroserve-update"
cat >> "$ROOT/usr/lib/os-release" <<OSREL
IMAGE_ID=$NAME
IMAGE_VERSION=$VERSION
OSREL
# The unit is the Ansible role's template, rendered with the appliance's paths.
ANSIBLE_CONFIG="$REPO/playbooks/ansible.cfg" ANSIBLE_LOCAL_TEMP="$WORK/ansible" \
  ansible-playbook -i localhost, "$REPO/playbooks/render.yml" >/dev/null \
  -e render_dir="$ROOT/usr/lib/systemd/system" -e '{"render_templates": ["zeroserve.service"]}' \
  -e _zeroserve_bin=/usr/lib/zeroserve/bin/zeroserve \
  -e _zeroserve_conf_path=/var/lib/zeroserve-config/Caddyfile \
  -e _zeroserve_release_id="$VERSION" -e zeroserve_deploy_id="$VERSION"
sed -i '/^# Ansible managed/d' "$ROOT/usr/lib/systemd/system/zeroserve.service"

cp "$wheel" "$ROOT/tmp/"
mounts=(proc sys dev)
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys"
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"
unmount() { for m in "${mounts[@]}"; do umount -R "$ROOT/$m" 2>/dev/null || true; done; }
trap unmount EXIT
chroot "$ROOT" /bin/bash -euo pipefail -s "/tmp/$(basename "$wheel")" <<'CHROOT'
wheel=$1
# zeroserve on the distribution's Python, bcc, jinja2 and pyroute2; pip fetches nothing.
python3 -m venv --system-site-packages /usr/lib/zeroserve
/usr/lib/zeroserve/bin/pip install --quiet --no-index --no-cache-dir \
  --disable-pip-version-check "$wheel"
ln -sf ../lib/zeroserve/bin/zeroserve /usr/bin/zeroserve
zeroserve version >/dev/null
rm -f "$wheel"
systemd-sysusers
systemctl enable systemd-networkd.service zeroserve.service zeroserve-config.service \
  zeroserve-health.service zeroserve-sshd-keygen.service ssh.service >/dev/null 2>&1
# The root is read-only: no first-boot prompts, no machine-id to commit.
systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service \
  systemd-machine-id-commit.service >/dev/null 2>&1
update-initramfs -u -k all >/dev/null 2>&1
mkdir -p /efi
CHROOT
unmount
trap - EXIT

# What differs from one build to the next, or must be per machine, goes.
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT/var/cache/ldconfig/aux-cache"
: > "$ROOT/etc/machine-id"
rm -rf "$ROOT"/var/log/* "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* "$ROOT"/tmp/* \
  "$ROOT"/root/.cache "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old
find "$ROOT/usr/lib/zeroserve" -name direct_url.json -delete

kernel=$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n1)
initrd="$ROOT/boot/initrd.img-${kernel##*/vmlinuz-}"

# 4. Root filesystem: read-only squashfs; mksquashfs sets the filesystem's and every file's
# time to SOURCE_DATE_EPOCH from the environment.
log "squashfs"
nice mksquashfs "$ROOT" "$WORK/root.squashfs" -comp zstd -Xcompression-level 6 -noappend \
  -quiet -no-progress \
  -reproducible -processors 2 >/dev/null

# 5. ESP: systemd-boot, slot a's kernel and initrd, and its entry (already good: no counter).
esp_tree() {  # $1: directory to fill, $2: extra file for /zeroserve/ (optional)
  local d=$1
  mkdir -p "$d/EFI/BOOT" "$d/EFI/systemd" "$d/loader/entries" "$d/zeroserve/a"
  cp "$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$d/EFI/BOOT/BOOTX64.EFI"
  cp "$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$d/EFI/systemd/systemd-bootx64.efi"
  cp "$kernel" "$d/zeroserve/a/vmlinuz"
  cp "$initrd" "$d/zeroserve/a/initrd.img"
  printf 'timeout 0\neditor no\nauto-entries no\nauto-firmware no\n' > "$d/loader/loader.conf"
  cat > "$d/loader/entries/zeroserve-a.conf" <<ENTRY
title zeroserve $VERSION (slot a)
version $VERSION
sort-key zeroserve
linux /zeroserve/a/vmlinuz
initrd /zeroserve/a/initrd.img
options root=PARTLABEL=zs-root-a $KERNEL_CMDLINE
ENTRY
  if [ $# -ge 2 ]; then cp "$2" "$d/zeroserve/"; fi
  find "$d" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}
esp_image() {  # $1: tree, $2: image file
  rm -f "$2"
  mkfs.vfat -C --invariant -i 5a53e5b0 -n ZS-ESP -F 32 "$2" \
    $(( $(numfmt --from=iec "$ESP_SIZE") / 1024 )) >/dev/null
  # mcopy keeps each file's time with -m; sorted so the directory order is fixed.
  (cd "$1" && find . -mindepth 1 -type d | sort | sed 's|^\./||' | while read -r dir; do
     mmd -i "$2" "::/$dir"; done
   find . -type f | sort | sed 's|^\./||' | while read -r f; do
     mcopy -m -i "$2" "$f" "::/$f"; done)
}
log "ESP"
esp_tree "$WORK/esp"
esp_image "$WORK/esp" "$WORK/esp.img"

# 6. The disk, from systemd-repart with every UUID derived from the seed.
disk() {  # $1: ESP image, $2: output raw
  local defs="$WORK/repart.d"
  rm -rf "$defs" "$2"
  mkdir -p "$defs"
  printf '[Partition]\nType=esp\nLabel=zs-esp\nCopyBlocks=%s\nSizeMinBytes=%s\nSizeMaxBytes=%s\n' \
    "$1" "$ESP_SIZE" "$ESP_SIZE" > "$defs/10-esp.conf"
  printf '[Partition]\nType=root-x86-64\nLabel=zs-root-a\nCopyBlocks=%s\nReadOnly=yes\nSizeMinBytes=%s\nSizeMaxBytes=%s\n' \
    "$WORK/root.squashfs" "$ROOT_SIZE" "$ROOT_SIZE" > "$defs/20-root-a.conf"
  printf '[Partition]\nType=root-x86-64\nLabel=zs-root-b\nReadOnly=yes\nSizeMinBytes=%s\nSizeMaxBytes=%s\n' \
    "$ROOT_SIZE" "$ROOT_SIZE" > "$defs/30-root-b.conf"
  printf '[Partition]\nType=linux-generic\nLabel=zs-data\nSizeMinBytes=%s\nSizeMaxBytes=%s\n' \
    "$DATA_SIZE" "$DATA_SIZE" > "$defs/40-data.conf"
  systemd-repart --empty=create --size=auto --seed="$REPART_SEED" --definitions="$defs" \
    --dry-run=no --pretty=no --json=off --discard=no "$2" >/dev/null
}
log "disk"
disk "$WORK/esp.img" "$OUT/$NAME.raw.tmp"
mv "$OUT/$NAME.raw.tmp" "$OUT/$NAME.raw"
nice qemu-img convert -f raw -O qcow2 "$OUT/$NAME.raw" "$OUT/$NAME.qcow2"

# 7. The update bundle for zeroserve-update.
log "update bundle"
bundle="$WORK/bundle"
mkdir -p "$bundle"
cp "$WORK/root.squashfs" "$bundle/root.squashfs"
cp "$kernel" "$bundle/vmlinuz"
cp "$initrd" "$bundle/initrd.img"
echo "$VERSION" > "$bundle/version"
(cd "$bundle" && sha256sum root.squashfs vmlinuz initrd.img version > SHA256SUMS)
tar_fixed() { tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  --format=gnu "$@"; }
tar_fixed -cf "$OUT/$NAME.update.tar" -C "$bundle" SHA256SUMS initrd.img root.squashfs vmlinuz version

# 8. The Vagrant box: the same disk, with Vagrant's public key for 'admin' on the ESP.
log "vagrant box"
vagrant_key=$(find /usr/share/rubygems-integration /usr/lib/ruby /usr/share/vagrant \
  -path '*/keys/vagrant.pub' 2>/dev/null | head -n1 || true)
[ -n "$vagrant_key" ] || { echo "image: Vagrant's public key not found (apt-get install vagrant)" >&2; exit 1; }
cp "$vagrant_key" "$WORK/authorized_keys"
esp_tree "$WORK/esp-box" "$WORK/authorized_keys"
esp_image "$WORK/esp-box" "$WORK/esp-box.img"
disk "$WORK/esp-box.img" "$WORK/box.raw"
boxdir="$WORK/box"
mkdir -p "$boxdir"
nice qemu-img convert -f raw -O qcow2 "$WORK/box.raw" "$boxdir/box.img"
virtual_size=$(( $(stat -c %s "$WORK/box.raw") / 1024 / 1024 / 1024 + 1 ))
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$virtual_size" \
  > "$boxdir/metadata.json"
cat > "$boxdir/Vagrantfile" <<'BOXVF'
# The appliance logs in 'admin' with the key from its ESP; UEFI boot.
Vagrant.configure("2") do |config|
  config.ssh.username = "admin"
  config.vm.provider :libvirt do |libvirt|
    libvirt.loader = "/usr/share/OVMF/OVMF_CODE_4M.fd"
  end
end
BOXVF
find "$boxdir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar_fixed --use-compress-program="gzip -n" -cf "$OUT/$NAME.box" -C "$boxdir" Vagrantfile box.img metadata.json

echo "$VERSION" > "$OUT/VERSION"
(cd "$OUT" && sha256sum "$NAME.raw" "$NAME.qcow2" "$NAME.update.tar" "$NAME.box" > SHA256SUMS)
rm -rf "$WORK/rootfs" "$WORK/box" "$WORK/bundle" "$WORK/box.raw"
log "done in $((SECONDS - started))s: $VERSION"
cat "$OUT/SHA256SUMS"
