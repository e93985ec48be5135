"""SYN cookies answered by XDP (appliance/bpf/include/syncookie.h): the maps that
drive them, and the network stack's side of the bargain.

The program only answers SYNs; the client's ACK goes to the stack, which must
take it as a cookie ACK. While the feature is on, the namespace runs with

- `net.ipv4.tcp_syncookies=2`: the stack answers the SYNs XDP lets through with
  cookies too, which marks each listener as having sent one, and it takes cookie
  ACKs only on such a listener;
- `net.ipv4.tcp_timestamps=2`: timestamps without a per-connection random offset.
  The stack subtracts that offset from an ACK's echoed timestamp before reading
  the options the SYN-ACK encoded in it, and XDP cannot know it.

`StackSysctls` sets them and puts the old values back when the feature goes.
A SYN-ACK must also announce what the stack will do for the connection: the
window scale it picks (from the largest receive buffer), its TTL, and whether it
takes up ECN.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zeroserve.datapath import layer, libbpf
from zeroserve.datapath.structs import STRUCTS
from zeroserve.plan.model import SynCookies

SYSCTLS = {"net/ipv4/tcp_syncookies": "2", "net/ipv4/tcp_timestamps": "2"}
PROC_SYS = Path("/proc/sys")
# SYNs are counted per second, as the appliance config's threshold says.
INTERVAL_NS = 1_000_000_000
# The kernel's TCP_MAX_WSCALE; tcp_select_initial_window scales a buffer of 2^n
# bytes by n - 15.
WSCALE_MAX, UNSCALED_BITS = 14, 15
CFG_MAP, PORTS_MAP, STATS_MAP = "zs_syncookie_cfg", "zs_syncookie_ports", "zs_syncookie_stats"


def _read(name: str) -> str:
    return (PROC_SYS / name).read_text().strip()


def _write(name: str, value: str) -> None:
    (PROC_SYS / name).write_text(value)


@dataclass(frozen=True)
class SynAckSettings:
    wscale: int
    ttl: int
    ecn: bool  # the stack takes up ECN when a SYN asks (tcp_ecn 1 or 2)


def synack_settings() -> SynAckSettings:
    """What the stack of the current namespace would put in its own SYN-ACK.

    tcp_select_initial_window scales for the largest buffer a socket may get,
    tcp_rmem's maximum or rmem_max (the latter only readable in the first namespace).
    """
    space = int(_read("net/ipv4/tcp_rmem").split()[2])
    if (PROC_SYS / "net/core/rmem_max").exists():
        space = max(space, int(_read("net/core/rmem_max")))
    wscale = min(max(space.bit_length() - 1 - UNSCALED_BITS, 0), WSCALE_MAX)
    ttl = int(_read("net/ipv4/ip_default_ttl"))
    return SynAckSettings(wscale, ttl, _read("net/ipv4/tcp_ecn") != "0")


@dataclass
class StackSysctls:
    """The sysctls SYN cookies need, set in the current namespace, and what they were."""

    saved: dict[str, str] = field(default_factory=dict)

    def enable(self) -> None:
        for name, value in SYSCTLS.items():
            old = _read(name)
            self.saved.setdefault(name, old)
            if old != value:
                _write(name, value)

    def restore(self) -> None:
        for name, value in self.saved.items():
            _write(name, value)
        self.saved.clear()


def write(maps: Mapping[str, libbpf.Map], cookies: SynCookies, settings: SynAckSettings) -> None:
    """Point the program's maps at the plan's ports, threshold and SYN-ACK settings."""
    if CFG_MAP not in maps:
        raise ValueError("SYN cookies are not compiled in")
    # Each CPU counts its own SYNs: the threshold is shared out, rounded up.
    cpus = os.cpu_count() or 1
    cfg = STRUCTS["zs_syncookie_cfg"](
        interval_ns=INTERVAL_NS,
        limit=-(-cookies.threshold // cpus),
        wscale=settings.wscale,
        ttl=settings.ttl,
        ecn=settings.ecn,
    )
    maps[CFG_MAP].update((0).to_bytes(4, "little"), bytes(cfg))
    port = STRUCTS["zs_syncookie_port"]
    values = {
        layer.port_key(p.port): bytes(port(slot=i, mss=p.mss or 0, tos=(p.dscp or 0) << 2))
        for i, p in enumerate(cookies.ports)
    }
    layer.sync(maps[PORTS_MAP], values)


def counters(maps: Mapping[str, libbpf.Map]) -> dict[int, dict[str, int]]:
    """ifindex -> SYN-ACKs sent back out of it: {"packets": n, "bytes": n}."""
    table = maps.get(STATS_MAP)
    if table is None:
        return {}
    return {
        int.from_bytes(key, "little"): layer.per_cpu_sum(
            table, int.from_bytes(key, "little"), "zs_counter"
        )
        for key in table.keys()
    }
