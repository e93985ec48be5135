"""The XDP edge layer: render, load, and drive appliance/bpf/xdp/entry.c.j2.

Features are compile-time flags (a plan without IPv6 rules compiles no IPv6
lookup); rules live in pinned maps and change without a reload. Maps are pinned
under `<pin root>/v<LAYOUT_VERSION>/xdp/` and reused by the next load, so rules and
counters survive reloads (layer.py keeps the pins in step with the features).
"""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from zeroserve.datapath import build, layer, libbpf, render, syncookie
from zeroserve.datapath.pins import PinLayout
from zeroserve.datapath.structs import CONSTS, STRUCTS
from zeroserve.plan.model import RateRule, XdpPlan

HOOK = "xdp"
ENTRY_TEMPLATE = "xdp/entry.c.j2"
FUNCTION = "zs_xdp"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REASONS = {
    name.removeprefix("ZS_REASON_").lower(): value
    for name, value in CONSTS.items()
    if name.startswith("ZS_REASON_") and name != "ZS_REASON_MAX"
}


class Counter(NamedTuple):
    packets: int
    bytes: int


class Drop(NamedTuple):
    """A source recently dropped: why (a REASONS name), under which rule, when, how often."""

    source: str
    reason: str
    rule: int
    first_ns: int  # CLOCK_MONOTONIC, like time.monotonic_ns()
    last_ns: int
    packets: int


@dataclass(frozen=True)
class XdpFeatures:
    """What the program is compiled with; every field becomes a #define."""

    deny_v4: bool = True
    deny_v6: bool = True
    vlan: bool = True
    drop_unserved: bool = False
    rate: bool = False
    syncookies: bool = False
    rules_max: int = CONSTS["ZS_RULES_MAX"]
    deny_lpm_max: int = CONSTS["ZS_DENY_LPM_MAX"]
    deny_exact_max: int = CONSTS["ZS_DENY_EXACT_MAX"]
    ports_max: int = CONSTS["ZS_PORTS_MAX"]
    rate_sources_max: int = CONSTS["ZS_RATE_SOURCES_MAX"]

    def defines(self) -> dict[str, int]:
        flags = {
            "ZS_FEATURE_DENY_V4": self.deny_v4,
            "ZS_FEATURE_DENY_V6": self.deny_v6,
            "ZS_FEATURE_VLAN": self.vlan,
            "ZS_FEATURE_DROP_UNSERVED": self.drop_unserved,
            "ZS_FEATURE_RATE": self.rate,
            "ZS_FEATURE_SYNCOOKIE": self.syncookies,
        }
        sizes = {
            "ZS_RULES_MAX": self.rules_max,
            "ZS_DENY_LPM_MAX": self.deny_lpm_max,
            "ZS_DENY_EXACT_MAX": self.deny_exact_max,
            "ZS_PORTS_MAX": self.ports_max,
            "ZS_RATE_SOURCES_MAX": self.rate_sources_max,
        }
        return {name: 1 for name, on in flags.items() if on} | sizes

    def maps(self) -> dict[str, tuple[str, str, int]]:
        """name -> (key struct, value struct, max_entries) of the maps this build declares."""
        # Mirrors maps.h; layer.load checks pinned shapes against it.
        maps = {
            "zs_rule_stats": ("__u32", "zs_counter", self.rules_max),
            "zs_verdicts": ("__u32", "zs_counter", CONSTS["ZS_REASON_MAX"]),
            "zs_drops": ("zs_drop_key", "zs_drop", CONSTS["ZS_DROPS_MAX"]),
        }
        if self.deny_v4:
            maps["zs_deny4_lpm"] = ("zs_lpm4_key", "zs_rule", self.deny_lpm_max)
            maps["zs_deny4_host"] = ("zs_host4_key", "zs_rule", self.deny_exact_max)
        if self.deny_v6:
            maps["zs_deny6_lpm"] = ("zs_lpm6_key", "zs_rule", self.deny_lpm_max)
            maps["zs_deny6_host"] = ("zs_host6_key", "zs_rule", self.deny_exact_max)
        if self.drop_unserved:
            maps["zs_open_ports"] = ("zs_port", "__u32", self.ports_max)
        if self.rate:
            maps["zs_rate_ports"] = ("zs_port", "zs_rate_cfg", self.ports_max)
            maps["zs_rate_buckets"] = ("zs_rate_key", "zs_bucket", self.rate_sources_max)
        if self.syncookies:
            maps["zs_syncookie_cfg"] = ("__u32", "zs_syncookie_cfg", 1)
            maps["zs_syncookie_ports"] = ("zs_port", "__u32", self.ports_max)
            maps["zs_syn_windows"] = ("__u32", "zs_syn_window", self.ports_max)
            maps["zs_syncookie_stats"] = ("__u32", "zs_counter", CONSTS["ZS_IFACES_MAX"])
        return maps

    @classmethod
    def for_plan(cls, plan: XdpPlan) -> XdpFeatures:
        """The smallest program that holds the plan: features only for what it uses."""
        families = {ipaddress.ip_network(p).version for r in plan.deny for p in r.prefixes}
        return cls(
            deny_v4=4 in families,
            deny_v6=6 in families,
            drop_unserved=plan.drop_unserved,
            rate=bool(plan.rate),
            syncookies=plan.syncookies is not None,
        )


def render_xdp(features: XdpFeatures, layout: PinLayout) -> str:
    return render.render(
        ENTRY_TEMPLATE, pin_dir=str(layout.hook_dir(HOOK)), defines=features.defines()
    )


def _deny_key(net: IPNetwork, port: int) -> tuple[str, bytes]:
    """The map a (prefix, port) belongs in, and its key bytes (port 0: every port)."""
    if not 0 <= port < 65536:
        raise ValueError(f"port {port} outside 0..65535")
    family = 4 if net.version == 4 else 6
    port_bytes = (ctypes.c_uint8 * 2)(*port.to_bytes(2, "big"))
    addr = (ctypes.c_uint8 * len(net.network_address.packed))(*net.network_address.packed)
    if net.prefixlen == net.max_prefixlen:
        host = STRUCTS[f"zs_host{family}_key"](port=port_bytes, addr=addr)
        return f"zs_deny{family}_host", bytes(host)
    lpm = STRUCTS[f"zs_lpm{family}_key"](prefixlen=16 + net.prefixlen, port=port_bytes, addr=addr)
    return f"zs_deny{family}_lpm", bytes(lpm)


@dataclass
class XdpLayer:
    """A loaded XDP program and its open maps. Attaching is attach.py's job."""

    features: XdpFeatures
    layout: PinLayout
    built: build.Built
    maps: dict[str, libbpf.Map] = field(default_factory=dict)

    @classmethod
    def load(
        cls, features: XdpFeatures = XdpFeatures(), layout: PinLayout | None = None
    ) -> XdpLayer:
        layout = layout or PinLayout()
        built, maps = layer.load(
            HOOK,
            render_xdp(features, layout),
            [build.ProgramSpec(FUNCTION, libbpf.PROG_TYPE_XDP)],
            features.maps(),
            layout,
        )
        return cls(features, layout, built, maps)

    @property
    def prog_fd(self) -> int:
        return self.built.fd(FUNCTION)

    @property
    def prog_id(self) -> int:
        return self.built.programs[FUNCTION].info.id

    def _check_rule(self, rule: int) -> None:
        if not CONSTS["ZS_RULE_NONE"] < rule < self.features.rules_max:
            raise ValueError(f"rule id {rule} outside 1..{self.features.rules_max - 1}")

    def set_deny(
        self,
        rules: Mapping[int, Iterable[str | IPNetwork]],
        ports: Mapping[int, Iterable[int]] | None = None,
    ) -> None:
        """Make the deny maps hold exactly rules (rule id -> source prefixes).

        ports scopes a rule to destination ports; a rule not in it guards every
        port. New entries go in before stale ones come out, so an address denied
        both before and after never passes in between.
        """
        wanted: dict[str, dict[bytes, bytes]] = {
            name: {} for name in self.maps if name.startswith("zs_deny")
        }
        for rule, prefixes in rules.items():
            self._check_rule(rule)
            scoped = sorted((ports or {}).get(rule) or [0])
            for prefix in prefixes:
                net = ipaddress.ip_network(prefix, strict=False)
                for port in scoped:
                    name, key = _deny_key(net, port)
                    if name not in wanted:
                        raise ValueError(f"{net}: IPv{net.version} deny is not compiled in")
                    wanted[name][key] = rule.to_bytes(4, "little")
        for name, entries in wanted.items():
            layer.sync(self.maps[name], entries)

    def deny_entries(self) -> dict[str, int]:
        """Current deny rules as "prefix" (every port) or "prefix :port" -> rule id."""
        out = {}
        for name, table in self.maps.items():
            if not name.startswith("zs_deny"):
                continue
            for key in table.keys():
                rule = int.from_bytes(table.lookup(key) or b"", "little")
                family = name[len("zs_deny")]
                if name.endswith("_lpm"):
                    lpm = STRUCTS[f"zs_lpm{family}_key"].from_buffer_copy(key)
                    length, port, addr = lpm.prefixlen - 16, lpm.port, lpm.addr
                else:
                    host = STRUCTS[f"zs_host{family}_key"].from_buffer_copy(key)
                    port, addr = host.port, host.addr
                    length = len(addr) * 8
                number = int.from_bytes(bytes(port), "big")
                scope = f" :{number}" if number else ""
                out[f"{ipaddress.ip_address(bytes(addr))}/{length}{scope}"] = rule
        return out

    def set_open_ports(self, ports: Iterable[int]) -> None:
        """TCP ports that take new connections (drop_unserved); SYNs elsewhere drop."""
        if "zs_open_ports" not in self.maps:
            raise ValueError("dropping unserved ports is not compiled in")
        one = (1).to_bytes(4, "little")
        layer.sync(self.maps["zs_open_ports"], {layer.port_key(p): one for p in ports})

    def set_rates(self, rules: Iterable[RateRule]) -> None:
        """Per-source connection rates per port: `burst` new connections per window."""
        if "zs_rate_ports" not in self.maps:
            raise ValueError("rate limits are not compiled in")
        cfg = STRUCTS["zs_rate_cfg"]
        wanted = {}
        for r in rules:
            self._check_rule(r.id)
            if r.burst < 1 or r.window_ns < r.burst:
                raise ValueError(f"rule {r.id}: {r.burst} events per {r.window_ns} ns")
            value = bytes(cfg(rule=r.id, window_ns=r.window_ns, cost_ns=r.window_ns // r.burst))
            for port in r.ports:
                wanted[layer.port_key(port)] = value
        layer.sync(self.maps["zs_rate_ports"], wanted)

    def apply(self, plan: XdpPlan) -> None:
        """Load the plan's rules into the maps (features must cover it: for_plan)."""
        self.set_deny({r.id: r.prefixes for r in plan.deny}, {r.id: r.ports for r in plan.deny})
        if plan.drop_unserved:
            self.set_open_ports(plan.open_ports)
        if plan.rate:
            self.set_rates(plan.rate)
        if plan.syncookies:
            syncookie.write(self.maps, plan.syncookies, syncookie.synack_settings())

    def syncookie_counters(self) -> dict[int, Counter]:
        """ifindex -> the SYN-ACKs XDP sent back out of that interface."""
        return {i: Counter(**c) for i, c in syncookie.counters(self.maps).items()}

    def _counter(self, table: str, index: int) -> Counter:
        return Counter(**layer.per_cpu_sum(self.maps[table], index, "zs_counter"))

    def rule_counter(self, rule: int) -> Counter:
        return self._counter("zs_rule_stats", rule)

    def verdict_counters(self) -> dict[str, Counter]:
        return {name: self._counter("zs_verdicts", value) for name, value in REASONS.items()}

    def drops(self) -> list[Drop]:
        """The sampled drop records, most recent first."""
        names = {value: name for name, value in REASONS.items()}
        key_type, value_type = STRUCTS["zs_drop_key"], STRUCTS["zs_drop"]
        table = self.maps["zs_drops"]
        out = []
        for raw in table.keys():
            value = table.lookup(raw)
            if value is None:  # forgotten by the LRU since keys() listed it
                continue
            key, drop = key_type.from_buffer_copy(raw), value_type.from_buffer_copy(value)
            address = ipaddress.ip_address(bytes(key.addr))
            source = address.ipv4_mapped or address
            reason = names.get(key.reason, str(key.reason))
            out.append(
                Drop(str(source), reason, key.rule, drop.first_ns, drop.last_ns, drop.packets)
            )
        return sorted(out, key=lambda d: d.last_ns, reverse=True)

    def close(self) -> None:
        for table in self.maps.values():
            table.close()
        self.built.close()

    def __enter__(self) -> XdpLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
