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

`StackSysctls` sets them and puts the old values back when the feature goes. It
keeps the old values in a map pinned beside the layout versions too (bpffs lasts
exactly as long as the settings do: a reboot resets both), so when an agent dies
with the feature on, the next one puts them back (`recover`) instead of taking
2 and 2 for the namespace's own.
A SYN-ACK must also announce what the stack will do for the connection: the
window scale it picks (from the largest receive buffer), its TTL, and whether it
takes up ECN.
"""

from __future__ import annotations

import os
import socket
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
# The pinned old values: a hash keyed by the network namespace's cookie (which the
# kernel never reuses while it runs: sysctls are per namespace, bpffs is not) and the
# sysctl's name, holding its value as text.
SAVED_MAP, SAVED_NAME_SIZE, SAVED_VALUE_SIZE, SAVED_MAX = "zs_sysctls", 56, 32, 64
BPF_MAP_TYPE_HASH = 1
SO_NETNS_COOKIE = 71  # socket(7), Linux 5.14; Python's socket module does not name it


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


def _netns_cookie() -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)


@dataclass
class StackSysctls:
    """The sysctls SYN cookies need, set in the current namespace, and what they were.

    pin is where the old values are pinned (None: kept in memory only).
    """

    pin: Path | None = None
    saved: dict[str, str] = field(default_factory=dict)

    def enable(self) -> None:
        for name, value in SYSCTLS.items():
            old = _read(name)
            if name not in self.saved:
                # Pinned before the change: a death right after it still leaves the old value.
                self._pin({name: old})
                self.saved[name] = old
            if old != value:
                _write(name, value)

    def restore(self) -> None:
        for name, value in self.saved.items():
            _write(name, value)
        self._unpin(self.saved)
        self.saved.clear()

    def recover(self) -> dict[str, str]:
        """Put back the old values a dead agent pinned for this namespace; returns them."""
        left = self._pinned()
        for name, value in left.items():
            _write(name, value)
        self._unpin(left)
        return left

    def _key(self, cookie: bytes, name: str) -> bytes:
        return cookie + name.encode().ljust(SAVED_NAME_SIZE, b"\0")

    def _map(self, create: bool) -> libbpf.Map | None:
        if self.pin is None or not (create or self.pin.exists()):
            return None
        if self.pin.exists():
            return libbpf.Map.open_pinned(self.pin)
        self.pin.parent.mkdir(parents=True, exist_ok=True)
        fd = libbpf.map_create(
            BPF_MAP_TYPE_HASH, SAVED_MAP, 8 + SAVED_NAME_SIZE, SAVED_VALUE_SIZE, SAVED_MAX
        )
        try:
            libbpf.obj_pin(fd, self.pin)
        except BaseException:
            os.close(fd)
            raise
        return libbpf.Map(fd, SAVED_MAP)

    def _pin(self, values: Mapping[str, str]) -> None:
        table = self._map(create=True)
        if table is None:
            return
        cookie = _netns_cookie()
        with table:
            for name, value in values.items():
                table.update(self._key(cookie, name), value.encode().ljust(SAVED_VALUE_SIZE, b"\0"))

    def _unpin(self, names: Mapping[str, str]) -> None:
        table = self._map(create=False)
        if table is None:
            return
        cookie = _netns_cookie()
        with table:
            for name in names:
                table.delete(self._key(cookie, name))

    def _pinned(self) -> dict[str, str]:
        table = self._map(create=False)
        if table is None:
            return {}
        cookie = _netns_cookie()
        with table:
            found = {key: table.lookup(key) for key in table.keys() if key[:8] == cookie}
        names = {key: key[8:].rstrip(b"\0").decode() for key in found}
        # Only the settings this module changes are ever written back.
        return {
            names[key]: value.rstrip(b"\0").decode()
            for key, value in found.items()
            if value is not None and names[key] in SYSCTLS
        }


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
