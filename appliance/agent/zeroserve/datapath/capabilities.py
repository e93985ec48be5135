"""The process's effective capabilities, read from /proc (no libcap dependency).

The appliance runs the agent as an unprivileged user with CAP_BPF and CAP_NET_ADMIN
granted by systemd, so "may load BPF" is a question about capabilities, not uid 0.
"""

from __future__ import annotations

from pathlib import Path

CAP_NET_ADMIN = 12
CAP_IPC_LOCK = 14
CAP_SYS_ADMIN = 21
CAP_BPF = 39


def has_capability(cap: int, status: Path = Path("/proc/self/status")) -> bool:
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def may_load_bpf() -> bool:
    """CAP_BPF (or, before it existed, CAP_SYS_ADMIN) plus CAP_NET_ADMIN for XDP/TC."""
    bpf = has_capability(CAP_BPF) or has_capability(CAP_SYS_ADMIN)
    return bpf and has_capability(CAP_NET_ADMIN)
