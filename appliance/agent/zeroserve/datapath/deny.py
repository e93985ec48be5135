"""Deny rules compiled into the XDP program's tables (appliance/bpf/include/deny.h).

The program asks one set of tables per packet, so the scopes are resolved here:
ports guarded by the same set of per-port rules form a class (class 0: ports no
per-port rule names, which only every-port rules guard), and each class's tables
hold, per prefix, the rule that wins for its ports: the longest prefix, a per-port
rule before an every-port one at equal length, the lower rule id last.

Tables come in two generations; a reload fills the idle one and then flips which
one packets meet (xdp.py), so a slot (generation * classes + class) keys everything.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from zeroserve.datapath.structs import STRUCTS

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PORTS = 65536
BLOCKS16 = 1 << 16
WORDS = 1 << 18  # the IPv6 bitmap: 2^24 starts (first 24 bits) of sources, 64 a word


class Entry(NamedTuple):
    """One prefix of one rule on one port (0: every port); addr has no host bits."""

    version: int
    addr: int
    length: int
    port: int
    rule: int

    def packed(self) -> bytes:
        return self.addr.to_bytes(4 if self.version == 4 else 16, "big")

    def __str__(self) -> str:
        return f"{ipaddress.ip_address(self.packed())}/{self.length}"


def parse_prefix(prefix: str | IPNetwork) -> tuple[int, int, int]:
    """(IP version, network address, length) of a prefix, host bits cleared.

    Dotted IPv4 text takes a fast path: block lists run to 100,000s of prefixes.
    """
    if isinstance(prefix, str) and ":" not in prefix:
        text, slash, length = prefix.partition("/")
        try:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        except OSError:
            raise ValueError(f"{prefix!r} does not appear to be an IPv4 or IPv6 network") from None
        if slash and not (length.isdigit() and int(length) <= 32):
            raise ValueError(f"{prefix!r}: invalid prefix length")
        bits = int(length) if slash else 32
        return 4, value >> (32 - bits) << (32 - bits), bits
    net = ipaddress.ip_network(prefix, strict=False)
    return net.version, int(net.network_address), net.prefixlen


def _priority(e: Entry) -> tuple[int, bool, int]:
    return (e.length, e.port != 0, -e.rule)


def classes_of(entries: Iterable[Entry]) -> tuple[dict[int, int], int]:
    """Port -> class for the ports per-port rules name, and how many classes there are."""
    per_port: dict[int, set[int]] = {}
    for e in entries:
        if e.port:
            per_port.setdefault(e.port, set()).add(e.rule)
    sets = sorted({frozenset(s) for s in per_port.values()}, key=sorted)
    number = {s: n for n, s in enumerate(sets, start=1)}
    return {port: number[frozenset(s)] for port, s in per_port.items()}, len(sets) + 1


@dataclass(frozen=True)
class Needs:
    """What a rule set needs compiled in (XdpFeatures.for_plan sizes the maps from it)."""

    v4_hosts: bool = False  # /25-/32
    v4_net24: bool = False  # /17-/24
    v4_net16: bool = False  # /0-/16
    v6: bool = False
    classes: int = 1
    chunks: int = 0  # /16 blocks holding /17-/32 rules
    net24_blocks: int = 0  # /24 blocks /17-/24 rules hold
    long_blocks: int = 0  # /24 blocks holding /25-/32 rules
    hosts: int = 0  # addresses /25-/32 rules hold
    v6_exact: int = 0  # IPv6 hash entries of one generation
    v6_lpm: int = 0  # IPv6 trie entries of one generation


def _span(e: Entry, unit: int) -> range:
    """The units (/unit blocks of an IPv4 prefix, or its addresses if unit is 32) it covers."""
    first = e.addr >> (32 - unit)
    return range(first, first + (1 << max(0, unit - e.length)))


def needs(entries: list[Entry]) -> Needs:
    _, classes = classes_of(entries)
    net24: set[int] = set()
    hosts: set[int] = set()
    v6 = {"exact": 0, "lpm": 0}
    for e in entries:
        length = e.length
        if e.version == 6:
            v6["exact" if length == 128 else "lpm"] += 1 if e.port else classes
        elif length > 24:
            hosts.update(_span(e, 32))
        elif length > 16:
            net24.update(_span(e, 24))
    v4 = [e.length for e in entries if e.version == 4]
    return Needs(
        v4_hosts=bool(hosts),
        v4_net24=bool(net24),
        v4_net16=any(length <= 16 for length in v4),
        v6=any(e.version == 6 for e in entries),
        classes=classes,
        chunks=len({b >> 8 for b in net24} | {h >> 16 for h in hosts}),
        net24_blocks=len(net24),
        long_blocks=len({h >> 8 for h in hosts}),
        hosts=len(hosts),
        v6_exact=v6["exact"],
        v6_lpm=v6["lpm"],
    )


@dataclass(frozen=True)
class Sizes:
    """What the program is built for (XdpFeatures), per generation."""

    classes: int
    chunks: int
    net24_blocks: int
    long_blocks: int
    hosts: int


@dataclass
class Region:
    """One generation's part of an array map: length elements from index first on, the
    ones in cells (offset -> value bytes) set, every other one zero."""

    first: int
    length: int
    cells: dict[int, bytes]


@dataclass
class Tables:
    """One generation's contents: IPv6 hash and trie entries by map name (key -> value
    bytes), and array regions by map name (the IPv4 tables and the ports' classes)."""

    entries: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    regions: dict[str, Region] = field(default_factory=dict)


def u32(value: int) -> bytes:
    """A __u32 value or key as the maps hold it."""
    return value.to_bytes(4, "little")


def build(entries: list[Entry], generation: int, sizes: Sizes, maps: Iterable[str]) -> Tables:
    """The tables of generation for entries, for the maps the program has."""
    maps = set(maps)
    port_class, classes = classes_of(entries)
    width = sizes.classes
    if classes > width:
        raise ValueError(
            f"deny rules guard {classes - 1} distinct sets of ports; the program is built "
            f"for {width - 1}"
        )
    every = list(range(classes))
    base = generation * width
    # unit * width + class -> rule, painted from the weakest entry to the strongest.
    cells: dict[str, dict[int, int]] = {"hosts": {}, "net24": {}, "net16": {}}
    v6 = {n: {} for n in ("zs_deny6_host", "zs_deny6_lpm") if n in maps}
    starts6: dict[int, int] = {}  # word -> bits: the 24-bit starts IPv6 prefixes cover
    for e in sorted(entries, key=_priority):
        targets = [port_class[e.port]] if e.port else every
        length = e.length
        if e.version == 6:
            _v6_entry(v6, e, [base + c for c in targets])
            first = e.addr >> 104
            _set_bits(starts6, first, first + (1 << max(0, 24 - length)))
            continue
        tier, unit = (
            ("hosts", 32) if length > 24 else ("net24", 24) if length > 16 else ("net16", 16)
        )
        if f"zs_deny4_{tier}" not in maps:
            raise ValueError(f"{e}: IPv4 deny of /{length} prefixes is not compiled in")
        span = _span(e, unit)
        for c in targets:
            keys = range(span.start * width + c, span.stop * width + c, width)
            cells[tier].update(dict.fromkeys(keys, e.rule))
    tables = Tables(entries=v6)
    if "zs_deny4_net16" in maps:
        net16 = {
            key % width * BLOCKS16 + key // width: u32(rule) for key, rule in cells["net16"].items()
        }
        tables.regions["zs_deny4_net16"] = Region(base * BLOCKS16, width * BLOCKS16, net16)
    net24, hosts = _units(cells["net24"], width), _units(cells["hosts"], width)
    longs = sorted({h >> 8 for h in hosts})
    chunks = sorted({b >> 8 for b in net24} | {b >> 8 for b in longs})
    for what, count, room in (
        ("/16 blocks of /17-/32 rules", len(chunks), sizes.chunks),
        ("/24 blocks of /17-/24 rules", len(net24), sizes.net24_blocks),
        ("/24 blocks of /25-/32 rules", len(longs), sizes.long_blocks),
        ("addresses of /25-/32 rules", len(hosts), sizes.hosts),
    ):
        if count > room:
            raise ValueError(
                f"IPv4 deny rules hold {count} {what}; the program has room for {room}"
            )
    if "zs_deny4_blocks" in maps:
        at = {block16: n for n, block16 in enumerate(chunks)}
        tables.regions["zs_deny4_chunks"] = Region(
            generation * BLOCKS16, BLOCKS16, {b: u32(n + 1) for b, n in at.items()}
        )
        tables.regions["zs_deny4_blocks"] = Region(
            generation * sizes.chunks * 4, len(chunks) * 4, _words(net24, longs, at)
        )
    if "zs_deny4_net24" in maps:
        tables.regions["zs_deny4_net24"] = Region(
            generation * sizes.net24_blocks * width,
            len(net24) * width,
            _rows(cells["net24"], net24, width),
        )
    if "zs_deny4_hosts" in maps:
        tables.regions["zs_deny4_hostmap"] = Region(
            generation * sizes.long_blocks, len(longs), _hostmaps(hosts)
        )
        tables.regions["zs_deny4_hosts"] = Region(
            generation * sizes.hosts * width,
            len(hosts) * width,
            _rows(cells["hosts"], hosts, width),
        )
    if "zs_deny6_blocks" in maps:
        words6 = {i: bits.to_bytes(8, "little") for i, bits in starts6.items()}
        tables.regions["zs_deny6_blocks"] = Region(generation * WORDS, WORDS, words6)
    ports = {port: u32(c) for port, c in port_class.items()}
    tables.regions["zs_deny_ports"] = Region(generation * PORTS, PORTS, ports)
    return tables


def _v6_entry(v6: dict[str, dict[bytes, bytes]], e: Entry, slots: list[int]) -> None:
    name = "zs_deny6_host" if e.length == 128 else "zs_deny6_lpm"
    if name not in v6:
        raise ValueError(f"{e}: IPv6 deny is not compiled in")
    for slot in slots:
        if name.endswith("_host"):
            key = STRUCTS["zs_host6_key"](slot=slot)
        else:
            key = STRUCTS["zs_lpm6_key"](slot=slot, prefixlen=32 + e.length)
        key.addr[:] = list(e.packed())
        v6[name][bytes(key)] = u32(e.rule)


def _units(cells: dict[int, int], width: int) -> list[int]:
    """The units painted, in order (their rank)."""
    return sorted(cells) if width == 1 else sorted({key // width for key in cells})


def _rows(cells: dict[int, int], units: list[int], width: int) -> dict[int, bytes]:
    """Each unit's rules per class at rank * width + class."""
    rank = {unit: n for n, unit in enumerate(units)}
    return {rank[key // width] * width + key % width: u32(r) for key, r in cells.items()}


def _bits(units: Iterable[int], shift: int) -> dict[int, int]:
    """Word (unit >> shift) -> its bits (one per unit in it)."""
    words: dict[int, int] = {}
    mask = (1 << shift) - 1
    for unit in units:
        words[unit >> shift] = words.get(unit >> shift, 0) | 1 << (unit & mask)
    return words


def _set_bits(words: dict[int, int], first: int, stop: int) -> None:
    """Set bits first..stop-1 of a bitmap kept as word -> 64 bits, a word at a time."""
    while first < stop:
        end = min(stop, (first | 63) + 1)
        words[first >> 6] = words.get(first >> 6, 0) | ((1 << (end - first)) - 1) << (first & 63)
        first = end


def _words(net24: list[int], longs: list[int], chunk: dict[int, int]) -> dict[int, bytes]:
    """zs_deny_word of each word with bits (nets and longs, the rank of each kind's first)
    at its place in its /16 block's chunk."""
    word = STRUCTS["zs_deny_word"]
    nets, lng = _bits(net24, 6), _bits(longs, 6)
    out = {}
    ranks = [0, 0]
    for index in sorted(nets.keys() | lng.keys()):
        value = word(nets=nets.get(index, 0), longs=lng.get(index, 0))
        value.nets_base, value.longs_base = ranks
        out[chunk[index >> 2] * 4 + (index & 3)] = bytes(value)
        ranks[0] += value.nets.bit_count()
        ranks[1] += value.longs.bit_count()
    return out


def _hostmaps(hosts: list[int]) -> dict[int, bytes]:
    """zs_deny_hosts of each /24 block holding hosts, by rank."""
    kind = STRUCTS["zs_deny_hosts"]
    out = {}
    rank = 0
    by_block: dict[int, list[int]] = {}
    for h in hosts:
        by_block.setdefault(h >> 8, []).append(h & 255)
    for n, block in enumerate(sorted(by_block)):
        words = _bits(by_block[block], 6)
        value = kind(base=rank)
        below = 0
        for i in range(4):
            value.bits[i] = words.get(i, 0)
            value.below[i] = below
            below += value.bits[i].bit_count()
        out[n] = bytes(value)
        rank += below
    return out
