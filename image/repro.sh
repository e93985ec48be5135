#!/usr/bin/env bash
# make image-repro: builds the appliance twice from the same commit and compares the sha256 of
# every output (raw, qcow2, update bundle, Vagrant box). Run as root.
#
# Both builds read one snapshot of HEAD (`git archive`, at a fixed path: the engine's debug
# info records where its sources were), not the checkout, which others may be editing between
# the two builds. Each build makes everything again, the engine included (its crate is cleaned
# from the check's own cargo target directory in between; the dependencies are compiled once).
# The Debian base comes from the cache unless REPRO_BASE=1, which makes the second build run
# mmdebstrap again (from the cached .debs, but the mirror's current package lists: a base
# differs if the mirror moved since the cached one was made).
# On a match the outputs are deleted (the sums stay in $REPRO/SHA256SUMS); on a mismatch both
# builds stay in $REPRO for diffoscope.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
REPRO=${REPRO:-$REPO/image/out/repro}
CACHE=${CACHE:-$REPO/image/out/cache}
commit=$(git -C "$REPO" rev-parse HEAD)
SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct "$commit")
export SOURCE_DATE_EPOCH VENV=$REPO/.venv CARGO_TARGET_DIR=$REPRO/target PATH=$HOME/.cargo/bin:$PATH

[ "$(id -u)" = 0 ] || { echo "image-repro: must run as root" >&2; exit 1; }
rm -rf "$REPRO/src" "$REPRO/1" "$REPRO/2" "$REPRO/cache" "$REPRO/SHA256SUMS"
mkdir -p "$REPRO/src"
git -C "$REPO" archive --format=tar "$commit" | tar -xf - -C "$REPRO/src"

for n in 1 2; do
  cache=$CACHE
  if [ "$n" = 2 ]; then
    cargo clean --quiet --release --package zeroserve-proxy \
      --manifest-path "$REPRO/src/appliance/proxy/Cargo.toml"
    if [ "${REPRO_BASE:-0}" = 1 ]; then
      cache=$REPRO/cache
      mkdir -p "$cache"
      cp -al "$CACHE/debs" "$cache/debs"
    fi
  fi
  echo "image-repro: build $n of ${commit:0:12} (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >&2
  started=$SECONDS
  CACHE=$cache OUT="$REPRO/$n" nice bash "$REPRO/src/image/build.sh" >/dev/null 2>"$REPRO/build-$n.log" \
    || { tail -n 20 "$REPRO/build-$n.log" >&2; exit 1; }
  echo "image-repro: build $n done in $((SECONDS - started))s" >&2
done
if [ "${REPRO_BASE:-0}" = 1 ]; then
  for rebuilt in "$REPRO"/cache/base-*.tar; do
    echo "image-repro: cached  $(sha256sum < "$CACHE/${rebuilt##*/}")" >&2
    echo "image-repro: rebuilt $(sha256sum < "$rebuilt")" >&2
  done
fi

if cmp -s "$REPRO/1/SHA256SUMS" "$REPRO/2/SHA256SUMS"; then
  echo "image-repro: ${commit:0:12}: both builds identical"
  cat "$REPRO/1/SHA256SUMS"
  cp "$REPRO/1/SHA256SUMS" "$REPRO/SHA256SUMS"
  rm -rf "$REPRO/1" "$REPRO/2" "$REPRO/src" "$REPRO/cache"
else
  echo "image-repro: ${commit:0:12}: the builds differ" >&2
  diff "$REPRO/1/SHA256SUMS" "$REPRO/2/SHA256SUMS" >&2 || true
  exit 1
fi
