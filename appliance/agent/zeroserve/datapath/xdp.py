"""The XDP edge layer: render, load, and drive appliance/bpf/xdp/entry.c.j2.

Features are compile-time flags (a plan without IPv6 rules compiles no IPv6
lookup); rules live in pinned maps and change without a reload. Maps are pinned
under `<pin root>/v<LAYOUT_VERSION>/xdp/` and reused by the next load, so rules and
counters survive reloads (layer.py keeps the pins in step with the features).
"""

from __future__ import annotations

import ctypes
import gc
import ipaddress
import mmap
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from zeroserve.datapath import build, deny, layer, libbpf, render, syncookie
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
    # IPv4 deny tiers by prefix length (deny.h): /25-/32, /17-/24, /0-/16.
    deny4_hosts: bool = True
    deny4_net24: bool = True
    deny4_net16: bool = True
    vlan: bool = True
    drop_unserved: bool = False
    rate: bool = False
    syncookies: bool = False
    rules_max: int = CONSTS["ZS_RULES_MAX"]
    deny_classes: int = CONSTS["ZS_DENY_CLASSES"]
    deny4_chunks_max: int = CONSTS["ZS_DENY4_CHUNKS_MAX"]
    deny4_ranks_max: int = CONSTS["ZS_DENY4_RANKS_MAX"]
    deny4_longs_max: int = CONSTS["ZS_DENY4_LONGS_MAX"]
    deny4_hosts_max: int = CONSTS["ZS_DENY4_HOSTS_MAX"]
    deny_lpm_max: int = CONSTS["ZS_DENY_LPM_MAX"]
    deny_exact_max: int = CONSTS["ZS_DENY_EXACT_MAX"]
    deny_records_max: int = CONSTS["ZS_DENY_RECORDS_MAX"]
    ports_max: int = CONSTS["ZS_PORTS_MAX"]
    rate_sources_max: int = CONSTS["ZS_RATE_SOURCES_MAX"]

    def defines(self) -> dict[str, int]:
        flags = {
            "ZS_FEATURE_DENY_V4": self.deny_v4,
            "ZS_FEATURE_DENY4_HOSTS": self.deny_v4 and self.deny4_hosts,
            "ZS_FEATURE_DENY4_NET24": self.deny_v4 and self.deny4_net24,
            "ZS_FEATURE_DENY4_NET16": self.deny_v4 and self.deny4_net16,
            "ZS_FEATURE_DENY_V6": self.deny_v6,
            "ZS_FEATURE_VLAN": self.vlan,
            "ZS_FEATURE_DROP_UNSERVED": self.drop_unserved,
            "ZS_FEATURE_RATE": self.rate,
            "ZS_FEATURE_SYNCOOKIE": self.syncookies,
        }
        sizes = {
            "ZS_RULES_MAX": self.rules_max,
            "ZS_DENY_CLASSES": self.deny_classes,
            "ZS_DENY4_CHUNKS_MAX": self.deny4_chunks_max,
            "ZS_DENY4_RANKS_MAX": self.deny4_ranks_max,
            "ZS_DENY4_LONGS_MAX": self.deny4_longs_max,
            "ZS_DENY4_HOSTS_MAX": self.deny4_hosts_max,
            "ZS_DENY_LPM_MAX": self.deny_lpm_max,
            "ZS_DENY_EXACT_MAX": self.deny_exact_max,
            "ZS_DENY_RECORDS_MAX": self.deny_records_max,
            "ZS_PORTS_MAX": self.ports_max,
            "ZS_RATE_SOURCES_MAX": self.rate_sources_max,
        }
        return {name: 1 for name, on in flags.items() if on} | sizes

    def maps(self) -> dict[str, tuple[str, str, int]]:
        """name -> (key struct, value struct, max_entries) of the maps this build declares."""
        # Mirrors maps.h and deny.h; layer.load checks pinned shapes against it.
        maps = {
            "zs_rule_stats": ("__u32", "zs_counter", self.rules_max),
            "zs_verdicts": ("__u32", "zs_counter", CONSTS["ZS_REASON_MAX"]),
            "zs_drops": ("zs_drop_key", "zs_drop", CONSTS["ZS_DROPS_MAX"]),
        }
        maps.update(self._deny_maps())
        if self.drop_unserved:
            maps["zs_open_ports"] = ("zs_port", "__u32", self.ports_max)
        if self.rate:
            maps["zs_rate_ports"] = ("zs_port", "zs_rate_cfg", self.ports_max)
            maps["zs_rate_buckets"] = ("zs_rate_key", "zs_bucket", self.rate_sources_max)
        if self.syncookies:
            maps["zs_syncookie_cfg"] = ("__u32", "zs_syncookie_cfg", 1)
            maps["zs_syncookie_ports"] = ("zs_port", "zs_syncookie_port", self.ports_max)
            maps["zs_syn_windows"] = ("__u32", "zs_syn_window", self.ports_max)
            maps["zs_syncookie_stats"] = ("__u32", "zs_counter", CONSTS["ZS_IFACES_MAX"])
        return maps

    def _deny_maps(self) -> dict[str, tuple[str, str, int]]:
        classes, v4 = self.deny_classes, self.deny_v4
        maps = {}
        if v4 or self.deny_v6:
            maps["zs_deny_gen"] = ("__u32", "__u32", 2 + classes)
            maps["zs_deny_ports"] = ("__u32", "__u32", 2 * deny.PORTS)
        if v4:
            maps["zs_deny4_rules"] = ("zs_deny_rec4", "zs_rule", self.deny_records_max)
        if v4 and (self.deny4_hosts or self.deny4_net24):
            maps["zs_deny4_chunks"] = ("__u32", "__u32", 2 * deny.BLOCKS16)
            maps["zs_deny4_blocks"] = ("__u32", "zs_deny_word", 2 * self.deny4_chunks_max * 4)
        if v4 and self.deny4_hosts:
            maps["zs_deny4_hostmap"] = ("__u32", "zs_deny_hosts", 2 * self.deny4_longs_max)
            maps["zs_deny4_hosts"] = ("__u32", "__u32", 2 * self.deny4_hosts_max * classes)
        if v4 and self.deny4_net24:
            maps["zs_deny4_net24"] = ("__u32", "__u32", 2 * self.deny4_ranks_max * classes)
        if v4 and self.deny4_net16:
            maps["zs_deny4_net16"] = ("__u32", "__u32", 2 * classes * deny.BLOCKS16)
        if self.deny_v6:
            maps["zs_deny6_rules"] = ("zs_deny_rec6", "zs_rule", self.deny_records_max)
            maps["zs_deny6_host"] = ("zs_host6_key", "zs_rule", self.deny_exact_max)
            maps["zs_deny6_lpm"] = ("zs_lpm6_key", "zs_rule", self.deny_lpm_max)
            maps["zs_deny6_blocks"] = ("__u32", "__u64", 2 * deny.WORDS)
        return maps

    def map_groups(self) -> list[set[str]]:
        """Maps recreated together: the deny tables index one another (deny.h)."""
        return [set(self._deny_maps())]

    @classmethod
    def for_plan(cls, plan: XdpPlan) -> XdpFeatures:
        """The smallest program that holds the plan: features only for what it uses.

        Sizes are powers of two with a floor, so most rule changes keep the program.
        """
        need = deny.needs(_plan_entries(plan))
        return cls(
            deny_v4=need.v4_hosts or need.v4_net24 or need.v4_net16,
            deny4_hosts=need.v4_hosts,
            deny4_net24=need.v4_net24,
            deny4_net16=need.v4_net16,
            deny_v6=need.v6,
            deny_classes=_power_of_two(need.classes, 1),
            deny4_chunks_max=_power_of_two(need.chunks, 256),
            deny4_ranks_max=_power_of_two(need.net24_blocks, 4096),
            deny4_longs_max=_power_of_two(need.long_blocks, 4096),
            deny4_hosts_max=_power_of_two(need.hosts, 16384),
            # Both generations live in the hashes and tries while a reload runs.
            deny_exact_max=_power_of_two(2 * need.v6_exact, 65536),
            deny_lpm_max=_power_of_two(2 * need.v6_lpm, 65536),
            deny_records_max=_power_of_two(
                sum(len(r.prefixes) * max(1, len(r.ports)) for r in plan.deny), 65536
            ),
            drop_unserved=plan.drop_unserved,
            rate=bool(plan.rate),
            syncookies=plan.syncookies is not None,
        )


def _power_of_two(n: int, floor: int) -> int:
    return max(floor, 1 << max(0, n - 1).bit_length())


def _deny_entries(
    rules: Mapping[int, Iterable[str | IPNetwork]],
    ports: Mapping[int, Iterable[int]] | None,
) -> list[deny.Entry]:
    """Rules as (prefix, port, rule) entries; port 0 guards every port."""
    out = []
    for rule, prefixes in rules.items():
        scoped = sorted((ports or {}).get(rule) or [0])
        for port in scoped:
            if not 0 <= port < 65536:
                raise ValueError(f"port {port} outside 0..65535")
        for prefix in prefixes:
            version, addr, length = deny.parse_prefix(prefix)
            out.extend(deny.Entry(version, addr, length, port, rule) for port in scoped)
    return out


def _plan_entries(plan: XdpPlan) -> list[deny.Entry]:
    return _deny_entries({r.id: r.prefixes for r in plan.deny}, {r.id: r.ports for r in plan.deny})


def render_xdp(features: XdpFeatures, layout: PinLayout) -> str:
    return render.render(
        ENTRY_TEMPLATE, pin_dir=str(layout.fresh_dir(HOOK)), defines=features.defines()
    )


def _records(
    entries: list[deny.Entry], maps: Mapping[str, object]
) -> dict[str, dict[bytes, bytes]]:
    """The rules as given, for zs_deny4_rules / zs_deny6_rules."""
    out: dict[str, dict[bytes, bytes]] = {n: {} for n in maps if n.endswith("_rules")}
    for e in entries:
        # Packed by hand (the mirror's layout, checked below): 100,000s of records.
        key = e.port.to_bytes(2, "big") + bytes((e.length, 0)) + e.packed()
        out[f"zs_deny{e.version}_rules"][key] = deny.u32(e.rule)
    return out


def _check_record_layout() -> None:
    for family, size in ((4, 4), (6, 16)):
        rec = STRUCTS[f"zs_deny_rec{family}"]
        layout = (rec.port.offset, rec.prefixlen.offset, rec.addr.offset, ctypes.sizeof(rec))
        if layout != (0, 2, 4, 4 + size):
            raise RuntimeError(f"structs.h: zs_deny_rec{family} is not what _records packs")


_check_record_layout()


def _slot(name: str, key: bytes) -> int:
    """The slot of a deny hash or trie key (tries put the prefix length first)."""
    at = 4 if name.endswith("_lpm") else 0
    return int.from_bytes(key[at : at + 4], "little")


def _keys(table: libbpf.Map) -> list[bytes]:
    if table.info.type == libbpf.MAP_TYPE_LPM_TRIE:
        return table.keys()
    return list(table.items_batch())


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Without the cyclic collector, which would walk the 100,000s of fresh tuples of a
    big rule set again and again (they hold no cycles): 3x faster."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write(table: libbpf.Map, entries: Mapping[bytes, bytes]) -> None:
    if table.info.type == libbpf.MAP_TYPE_LPM_TRIE:  # no batch operations on tries
        for key, value in entries.items():
            table.update(key, value)
    else:
        table.update_batch(b"".join(entries), b"".join(entries.values()))


def _delete(table: libbpf.Map, keys: list[bytes]) -> None:
    if table.info.type == libbpf.MAP_TYPE_LPM_TRIE:
        for key in keys:
            table.delete(key)
    else:
        table.delete_batch(b"".join(keys))


@dataclass
class XdpLayer:
    """A loaded XDP program and its open maps. Attaching is attach.py's job."""

    features: XdpFeatures
    layout: PinLayout
    built: build.Built
    maps: dict[str, libbpf.Map] = field(default_factory=dict)
    # The deny arrays' cells as this layer last wrote them, by (map, generation), valid
    # while zs_deny_gen's write count is the one it left: a map-only reload then writes
    # only what changed.
    _deny_serial: int = field(default=-1, repr=False)
    _deny_written: dict[tuple[str, int], dict[int, bytes]] = field(default_factory=dict, repr=False)
    _deny_views: dict[str, mmap.mmap] = field(default_factory=dict, repr=False)

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
            features.map_groups(),
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
        port. The tables are filled in the idle generation, then one word flips
        packets over to it, then the old generation's hash entries go: a packet
        meets either the old rule set or the new one, whole. Bad rules raise
        ValueError before anything is written.
        """
        with _no_cyclic_gc():
            entries = _deny_entries(rules, ports)
            try:
                self._set_deny(entries)
            except BaseException:
                self._deny_written = {}  # a write may have stopped half-way
                raise

    def _set_deny(self, entries: list[deny.Entry]) -> None:
        for e in entries:
            self._check_rule(e.rule)
        if "zs_deny_gen" not in self.maps:
            if entries:
                raise ValueError("deny rules are not compiled in")
            return
        f = self.features
        sizes = deny.Sizes(
            f.deny_classes,
            f.deny4_chunks_max,
            f.deny4_ranks_max,
            f.deny4_longs_max,
            f.deny4_hosts_max,
        )
        gen = self.maps["zs_deny_gen"]
        active, serial = (
            int.from_bytes(gen.lookup(deny.u32(i)) or bytes(4), "little") for i in (0, 1)
        )
        idle = 1 - (active & 1)
        tables = deny.build(entries, idle, sizes, self.maps)
        records = _records(entries, self.maps)
        if serial != self._deny_serial:  # someone else wrote since: what we wrote is stale
            self._deny_written = {}
        old: dict[str, list[bytes]] = {}
        for name, wanted in tables.entries.items():
            table = self.maps[name]
            by_generation: dict[int, list[bytes]] = {0: [], 1: []}
            for key in _keys(table):
                by_generation[min(_slot(name, key) // f.deny_classes, 1)].append(key)
            old[name] = by_generation[1 - idle]
            _delete(table, by_generation[idle])
            _write(table, wanted)
        for name, region in tables.regions.items():
            self._write_region(name, region, idle)
        # The flip: from here on every packet meets the new generation.
        gen.update(deny.u32(0), deny.u32(idle))
        gen.update(deny.u32(1), deny.u32(serial + 1))
        self._deny_serial = serial + 1
        for name, keys in old.items():
            _delete(self.maps[name], keys)
        for name, wanted in records.items():
            table = self.maps[name]
            current = table.items_batch()
            _write(table, {k: v for k, v in wanted.items() if current.get(k) != v})
            _delete(table, [k for k in current if k not in wanted])

    def _write_region(self, name: str, region: deny.Region, generation: int) -> None:
        """A region into its array (through mmap, deny.h): the cells that differ from what
        this layer wrote there last, and zeros where it wrote cells no longer wanted; if
        it does not know what is there, every element."""
        if name not in self._deny_views:
            self._deny_views[name] = self.maps[name].mmap()
        view = self._deny_views[name]
        size = self.maps[name].info.value_size
        stride = (size + 7) // 8 * 8
        start = region.first * stride
        before = self._deny_written.get((name, generation))
        self._deny_written[(name, generation)] = region.cells
        if before is None:
            dense = bytearray(stride * region.length)
            for i, value in region.cells.items():
                dense[i * stride : i * stride + size] = value
            view[start : start + len(dense)] = dense
            return
        zero = bytes(size)
        for i in before:
            if i not in region.cells and i < region.length:
                view[start + i * stride : start + i * stride + size] = zero
        for i, value in region.cells.items():
            if before.get(i) != value:
                view[start + i * stride : start + i * stride + size] = value

    def deny_entries(self) -> dict[str, int]:
        """Current deny rules as "prefix" (every port) or "prefix :port" -> rule id."""
        out = {}
        for family in (4, 6):
            table = self.maps.get(f"zs_deny{family}_rules")
            if table is None:
                continue
            for key, value in table.items_batch().items():
                rule = int.from_bytes(value, "little")
                rec = STRUCTS[f"zs_deny_rec{family}"].from_buffer_copy(key)
                number = int.from_bytes(bytes(rec.port), "big")
                scope = f" :{number}" if number else ""
                address = ipaddress.ip_address(bytes(rec.addr))
                out[f"{address}/{rec.prefixlen}{scope}"] = rule
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
        for view in self._deny_views.values():
            view.close()
        self._deny_views.clear()
        for table in self.maps.values():
            table.close()
        self.built.close()

    def __enter__(self) -> XdpLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
