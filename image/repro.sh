#!/usr/bin/env bash
# make image-repro: builds the appliance twice from the same commit and compares the sha256 of
# every output (raw, qcow2, update bundle, Vagrant box). Run as root.
#
# Both builds read one snapshot of HEAD (`git archive`, at a fixed path: the engine's debug
# info records where its sources were), not the checkout, which others may be editing between
# the two builds. They share the Debian base cache and cargo's target directory; everything
# else is built again. On a match the outputs are deleted (the sums stay); on a mismatch both
# trees stay in $REPRO for diffoscope.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
REPRO=${REPRO:-$REPO/image/out/repro}
CACHE=${CACHE:-$REPO/image/out/cache}
commit=$(git -C "$REPO" rev-parse HEAD)
SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct "$commit")
export SOURCE_DATE_EPOCH CACHE VENV=$REPO/.venv CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}

[ "$(id -u)" = 0 ] || { echo "image-repro: must run as root" >&2; exit 1; }
rm -rf "$REPRO"
mkdir -p "$REPRO/src"
git -C "$REPO" archive --format=tar "$commit" | tar -xf - -C "$REPRO/src"

for n in 1 2; do
  echo "image-repro: build $n of ${commit:0:12} (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >&2
  OUT="$REPRO/$n" bash "$REPRO/src/image/build.sh" >/dev/null
done

if cmp -s "$REPRO/1/SHA256SUMS" "$REPRO/2/SHA256SUMS"; then
  echo "image-repro: ${commit:0:12}: both builds identical"
  cat "$REPRO/1/SHA256SUMS"
  cp "$REPRO/1/SHA256SUMS" "$REPRO/SHA256SUMS"
  rm -rf "$REPRO/1" "$REPRO/2" "$REPRO/src"
else
  echo "image-repro: ${commit:0:12}: the builds differ" >&2
  diff "$REPRO/1/SHA256SUMS" "$REPRO/2/SHA256SUMS" >&2 || true
  exit 1
fi
