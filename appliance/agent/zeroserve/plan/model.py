"""What a plan says: each rule's layer and why, and what each BPF layer must hold.

The per-layer parts carry rules as data (prefixes, ports, sites); the datapath
modules turn them into map entries. Feature sets are derived from the data, so
two plans with the same shape compile to the same programs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Layer(enum.Enum):
    XDP = "xdp"
    TC = "tc"
    SOCK = "sock"
    ENGINE = "engine"


@dataclass(frozen=True)
class Placement:
    """One row of the placement table."""

    rule: str  # where the rule is: "srv1 routes[0]", "site 198.18.0.1:8080", ...
    what: str  # the rule in Caddyfile terms: "abort @ remote_ip 10.0.0.0/8"
    line: str  # "Caddyfile:3", or "n/a" when the config is not a Caddyfile
    layer: Layer
    reason: str
    hint: str = ""  # what would let an engine rule move down
    rule_id: int = 0  # XDP: the id its counters and drop records carry (0: none)


@dataclass(frozen=True)
class Listener:
    """One (network, address, port) a server listens on; address "" is every address."""

    network: str  # "tcp" or "udp"
    address: str
    port: int
    server: str


@dataclass(frozen=True)
class DenyRule:
    """Sources whose packets to ports are dropped before the stack sees them."""

    id: int
    prefixes: tuple[str, ...]
    ports: tuple[int, ...]


@dataclass(frozen=True)
class RateRule:
    """A per-source token bucket on new connections (TCP SYNs) to ports."""

    id: int
    ports: tuple[int, ...]
    burst: int  # caddy-ratelimit's max_events
    window_ns: int


@dataclass(frozen=True)
class CookiePort:
    """A TCP port the engine serves, with the marks TC puts on its stack's SYN-ACKs,
    which XDP's must carry themselves (they leave without passing TC)."""

    port: int
    mss: int | None = None  # the smallest MSS clamp of the port's sites
    dscp: int | None = None  # the DSCP of the port's sites, when they agree on one


@dataclass(frozen=True)
class SynCookies:
    """XDP answers SYNs to ports with cookie SYN-ACKs past threshold SYNs per second."""

    threshold: int  # per port, over all CPUs
    ports: tuple[CookiePort, ...]


@dataclass
class XdpPlan:
    deny: list[DenyRule] = field(default_factory=list)
    rate: list[RateRule] = field(default_factory=list)
    drop_unserved: bool = False
    open_ports: tuple[int, ...] = ()  # served TCP ports plus the operator's allow_ports
    syncookies: SynCookies | None = None

    @property
    def needed(self) -> bool:
        return bool(self.deny or self.rate or self.drop_unserved or self.syncookies)


@dataclass(frozen=True)
class Site:
    """A local address:port the TC layer marks and counts; address "" is any address."""

    id: int
    address: str
    port: int
    dscp: int | None  # None: leave the DS field as the stack set it
    mss: int | None  # None: no clamping


@dataclass
class TcPlan:
    sites: list[Site] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        return any(s.dscp is not None or s.mss is not None for s in self.sites)


@dataclass
class SockPlan:
    """Every served TCP (address, port): sk_lookup hands its connections to the listener."""

    dispatch: list[Listener] = field(default_factory=list)


@dataclass
class Plan:
    placements: list[Placement] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
    xdp: XdpPlan = field(default_factory=XdpPlan)
    tc: TcPlan = field(default_factory=TcPlan)
    sock: SockPlan = field(default_factory=SockPlan)
    interfaces: tuple[str, ...] = ()
    xdp_mode: str = "native"
    warnings: list[str] = field(default_factory=list)
