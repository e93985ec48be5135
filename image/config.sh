# Pinned inputs of the image build; build.sh sources this. Change a value, change the image.
# shellcheck shell=bash
SUITE=bookworm
ARCH=amd64
MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
# Every timestamp in the image, and the image version; defaults to the commit being built.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct)}
# The Debian base (mmdebstrap) is built with its own pinned epoch, so it stays cached across
# commits; the squashfs then sets every file time to SOURCE_DATE_EPOCH. Bump it to refresh the
# base from the mirror.
BASE_EPOCH=1795755200
# systemd-repart derives every partition UUID from this seed.
REPART_SEED=9b4e1f0e-5a57-4c2c-8f1e-7a0e5e2d3c41
# Partition sizes (GPT: ESP, root A, root B, data; the data partition grows to fill the disk
# on first boot).
ESP_SIZE=256M
ROOT_SIZE=1536M
DATA_SIZE=512M
# Boot attempts a newly written slot gets before systemd-boot falls back to the other one.
BOOT_TRIES=3
# Kernel options of every slot's entry, after root=PARTLABEL=zs-root-<slot>. panic=10: a root
# that does not mount reboots, so its boot tries run out.
KERNEL_CMDLINE="ro rootfstype=squashfs console=ttyS0,115200 panic=10"
