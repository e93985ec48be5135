"""The XDP edge layer: render, load, and drive appliance/bpf/xdp/entry.c.j2.

Features are compile-time flags (a plan without IPv6 rules compiles no IPv6
lookup); rules live in pinned maps and change without a reload. Maps are pinned
under `<pin root>/v<LAYOUT_VERSION>/xdp/` and reused by the next load, so rules and
counters survive reloads. A pinned map whose shape no longer matches (sizes from
a different plan, or a layout change that forgot to bump the version) is unpinned
before the build, and the agent writes the rules again. Pins of other layout
versions are unlinked at every load (programs still attached keep their maps).
"""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from zeroserve.datapath import build, libbpf, render
from zeroserve.datapath.pins import PinLayout
from zeroserve.datapath.structs import CONSTS, STRUCTS

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


@dataclass(frozen=True)
class XdpFeatures:
    """What the program is compiled with; every field becomes a #define."""

    deny_v4: bool = True
    deny_v6: bool = True
    vlan: bool = True
    rules_max: int = CONSTS["ZS_RULES_MAX"]
    deny_lpm_max: int = CONSTS["ZS_DENY_LPM_MAX"]
    deny_exact_max: int = CONSTS["ZS_DENY_EXACT_MAX"]

    def defines(self) -> dict[str, int]:
        flags = {
            "ZS_FEATURE_DENY_V4": self.deny_v4,
            "ZS_FEATURE_DENY_V6": self.deny_v6,
            "ZS_FEATURE_VLAN": self.vlan,
        }
        sizes = {
            "ZS_RULES_MAX": self.rules_max,
            "ZS_DENY_LPM_MAX": self.deny_lpm_max,
            "ZS_DENY_EXACT_MAX": self.deny_exact_max,
        }
        return {name: 1 for name, on in flags.items() if on} | sizes

    def maps(self) -> dict[str, tuple[str, str, int]]:
        """name -> (key struct, value struct, max_entries) of the maps this build declares."""
        # Mirrors maps.h; the shape check in _drop_mismatched_pins relies on it.
        maps = {
            "zs_rule_stats": ("__u32", "zs_counter", self.rules_max),
            "zs_verdicts": ("__u32", "zs_counter", CONSTS["ZS_REASON_MAX"]),
        }
        if self.deny_v4:
            maps["zs_deny4_lpm"] = ("zs_lpm4_key", "zs_rule", self.deny_lpm_max)
            maps["zs_deny4_host"] = ("zs_addr4", "zs_rule", self.deny_exact_max)
        if self.deny_v6:
            maps["zs_deny6_lpm"] = ("zs_lpm6_key", "zs_rule", self.deny_lpm_max)
            maps["zs_deny6_host"] = ("zs_addr6", "zs_rule", self.deny_exact_max)
        return maps


def _sizeof(name: str) -> int:
    return 4 if name == "__u32" else ctypes.sizeof(STRUCTS[name])


def render_xdp(features: XdpFeatures, layout: PinLayout) -> str:
    return render.render(
        ENTRY_TEMPLATE, pin_dir=str(layout.hook_dir(HOOK)), defines=features.defines()
    )


def _drop_mismatched_pins(features: XdpFeatures, layout: PinLayout) -> list[str]:
    dropped = []
    for name, (key, value, max_entries) in features.maps().items():
        path = layout.map_path(HOOK, name)
        if not path.exists():
            continue
        with libbpf.Map.open_pinned(path) as pinned:
            info = pinned.info
        if (info.key_size, info.value_size, info.max_entries) != (
            _sizeof(key),
            _sizeof(value),
            max_entries,
        ):
            path.unlink()
            dropped.append(name)
    return dropped


def _prefix_key(net: IPNetwork) -> tuple[str, bytes]:
    """The map a prefix belongs in, and its key bytes."""
    family = 4 if net.version == 4 else 6
    addr = net.network_address.packed
    if net.prefixlen == net.max_prefixlen:
        return f"zs_deny{family}_host", addr
    return f"zs_deny{family}_lpm", net.prefixlen.to_bytes(4, "little") + addr


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
        with layout.lock():
            layout.remove_stale_versions()
            layout.prepare(HOOK)
            _drop_mismatched_pins(features, layout)
            built = build.build(
                render_xdp(features, layout),
                [build.ProgramSpec(FUNCTION, libbpf.PROG_TYPE_XDP)],
                layout,
            )
            wanted = features.maps()
            layout.remove_unused(HOOK, set(wanted))
            maps = {name: libbpf.Map.open_pinned(layout.map_path(HOOK, name)) for name in wanted}
        return cls(features, layout, built, maps)

    @property
    def prog_fd(self) -> int:
        return self.built.fd(FUNCTION)

    @property
    def prog_id(self) -> int:
        return self.built.programs[FUNCTION].info.id

    def set_deny(self, rules: Mapping[int, Iterable[str | IPNetwork]]) -> None:
        """Make the deny maps hold exactly rules (rule id -> source prefixes).

        New entries go in before stale ones come out, so an address denied both
        before and after never passes in between.
        """
        wanted: dict[str, dict[bytes, bytes]] = {
            name: {} for name in self.maps if name.startswith("zs_deny")
        }
        for rule, prefixes in rules.items():
            if not CONSTS["ZS_RULE_NONE"] < rule < self.features.rules_max:
                raise ValueError(f"rule id {rule} outside 1..{self.features.rules_max - 1}")
            for prefix in prefixes:
                net = ipaddress.ip_network(prefix, strict=False)
                name, key = _prefix_key(net)
                if name not in wanted:
                    raise ValueError(f"{net}: IPv{net.version} deny is not compiled in")
                wanted[name][key] = rule.to_bytes(4, "little")
        for name, entries in wanted.items():
            table = self.maps[name]
            for key, value in entries.items():
                table.update(key, value)
            for key in set(table.keys()) - set(entries):
                table.delete(key)

    def deny_entries(self) -> dict[str, int]:
        """Current deny rules as prefix -> rule id (what the kernel holds)."""
        out = {}
        for name, table in self.maps.items():
            if not name.startswith("zs_deny"):
                continue
            for key in table.keys():
                rule = int.from_bytes(table.lookup(key) or b"", "little")
                if name.endswith("_lpm"):
                    length, addr = int.from_bytes(key[:4], "little"), key[4:]
                else:
                    length, addr = len(key) * 8, key
                out[f"{ipaddress.ip_address(addr)}/{length}"] = rule
        return out

    def _counter(self, table: str, index: int) -> Counter:
        slots = self.maps[table].lookup_per_cpu(index.to_bytes(4, "little"))
        per_cpu = [STRUCTS["zs_counter"].from_buffer_copy(s) for s in slots]
        return Counter(sum(c.packets for c in per_cpu), sum(c.bytes for c in per_cpu))

    def rule_counter(self, rule: int) -> Counter:
        return self._counter("zs_rule_stats", rule)

    def verdict_counters(self) -> dict[str, Counter]:
        return {name: self._counter("zs_verdicts", value) for name, value in REASONS.items()}

    def close(self) -> None:
        for table in self.maps.values():
            table.close()
        self.built.close()

    def __enter__(self) -> XdpLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
