"""The process's effective capabilities, read from /proc (no libcap dependency), and
what each edge layer needs of them.

The appliance runs the agent as an unprivileged user with CAP_BPF, CAP_PERFMON and
CAP_NET_ADMIN granted by systemd, so "may load BPF" is a question about capabilities,
not uid 0. When the kernel refuses a layer, its errno text ("Permission denied") does
not say which capability was missing; `explain` does, from the effective set.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_IPC_LOCK = 14
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

# linux/capability.h, in bit order.
_NAMES = (
    "chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap"
    " linux_immutable net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner"
    " sys_module sys_rawio sys_chroot sys_ptrace sys_pacct sys_admin sys_boot sys_nice"
    " sys_resource sys_time sys_tty_config mknod lease audit_write audit_control setfcap"
    " mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf"
    " checkpoint_restore"
).split()

# The kernel's bpf_capable() and perfmon_capable() also accept CAP_SYS_ADMIN (what
# root and pre-5.8 setups rely on); rtnetlink, which attaches XDP and TC, does not.
_SYS_ADMIN_COVERS = {CAP_BPF, CAP_PERFMON}

# Before 5.11 the kernel charged BPF maps to RLIMIT_MEMLOCK instead of the memory cgroup.
_MEMCG_ACCOUNTING = (5, 11)


@dataclass(frozen=True)
class Need:
    cap: int
    why: str

    def __str__(self) -> str:
        return f"{cap_name(self.cap)} ({self.why})"


_LOAD = Need(CAP_BPF, "creating maps and loading programs")
_PARSE = Need(CAP_PERFMON, "the verifier refuses packet parsing without it")
_NET = Need(CAP_NET_ADMIN, "XDP and TC programs, their hooks and the socket map")

# Layer name (plan.Layer's value) -> what its program needs. Measured on 6.x kernels by
# loading each layer as an unprivileged user with one capability taken away.
LAYER_NEEDS: dict[str, tuple[Need, ...]] = {
    "xdp": (_LOAD, _PARSE, _NET),
    "tc": (_LOAD, _PARSE, _NET),
    "sock": (_LOAD, _NET),
}
LAYER_TITLES = {"xdp": "XDP", "tc": "TC", "sock": "sk_lookup"}


def cap_name(cap: int) -> str:
    return f"CAP_{_NAMES[cap].upper()}" if cap < len(_NAMES) else f"capability {cap}"


def effective(status: Path = Path("/proc/self/status")) -> int:
    """The CapEff mask (0 where /proc says nothing)."""
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def has_capability(cap: int, status: Path = Path("/proc/self/status")) -> bool:
    return bool(effective(status) >> cap & 1)


def may_load_bpf() -> bool:
    """CAP_BPF (or, before it existed, CAP_SYS_ADMIN) plus CAP_NET_ADMIN for XDP/TC."""
    mask = effective()
    return _held(CAP_BPF, mask) and _held(CAP_NET_ADMIN, mask)


def shown(mask: int) -> str:
    """The capabilities of mask by name, or `none`."""
    return ", ".join(cap_name(c) for c in range(mask.bit_length()) if mask >> c & 1) or "none"


def _held(cap: int, mask: int) -> bool:
    return bool(mask >> cap & 1) or (cap in _SYS_ADMIN_COVERS and bool(mask >> CAP_SYS_ADMIN & 1))


def missing(layer: str, mask: int) -> list[Need]:
    """What layer needs that mask lacks."""
    return [n for n in LAYER_NEEDS[layer] if not _held(n.cap, mask)]


def explain(layers: list[str], mask: int) -> str | None:
    """Why these layers cannot load with mask, naming each absent capability, or None
    when mask holds everything they need (the cause is then elsewhere)."""
    lacking: dict[Need, list[str]] = {}
    for layer in layers:
        for need in missing(layer, mask):
            lacking.setdefault(need, []).append(LAYER_TITLES[layer])
    if not lacking:
        return None
    by_layers: dict[tuple[str, ...], list[Need]] = {}
    for need, titles in lacking.items():
        by_layers.setdefault(tuple(titles), []).append(need)
    parts = []
    for titles, needs in by_layers.items():
        who = titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"
        verb = "program needs" if len(titles) == 1 else "programs need"
        parts.append(f"the {who} {verb} {' and '.join(str(n) for n in needs)}")
    return f"{'; '.join(parts)}; effective capabilities: {shown(mask)}"


def memlock_shortfall(release: str | None = None, limit: int | None = None) -> str | None:
    """Why maps may not fit under RLIMIT_MEMLOCK on this kernel, or None where they do
    (5.11 and later charge the memory cgroup, not the rlimit)."""
    release = release or os.uname().release
    if limit is None:
        limit = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    numbers = [int(p) for p in release.split("-")[0].split(".")[:2] if p.isdigit()]
    if tuple(numbers) >= _MEMCG_ACCOUNTING or limit == resource.RLIM_INFINITY:
        return None
    return (
        f"kernel {release} charges BPF maps to RLIMIT_MEMLOCK, which is {limit >> 10} KiB"
        " (LimitMEMLOCK=infinity in the unit)"
    )
