"""zeroserve: a Caddy-compatible edge web server appliance.

Data flows Caddyfile → tokens → server blocks → Caddy JSON → plan → {BPF programs,
engine route program}; see docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
