#!/bin/sh
# Fuzz the engine's HTTP/1.1 request parser and chunked decoder (stable-toolchain mutation
# fuzzer, appliance/proxy/examples/fuzz_http1.rs) for 10 minutes, niced so it shares the
# machine. Extra arguments go to the fuzzer (--seconds N, --seed S, --crash-dir DIR).
# Exits non-zero if any input panicked or broke an invariant; those inputs are saved.
set -eu
cd "$(dirname "$0")/../appliance/proxy"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/../../target}"
exec nice -n 10 cargo run --quiet --release --example fuzz_http1 -- --seconds 600 "$@"
