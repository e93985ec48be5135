"""XDP deny-path cost per packet, through BPF_PROG_TEST_RUN with many prefixes.

The production XDP program is built for a plan of N random IPv4 deny prefixes of mixed
lengths (/8 to /32, mostly /24 and /32, as published block lists are) and its maps are
filled by the product's own map-writing code (XdpLayer.apply). Then one packet per case is
run `--repeat` times by the kernel (BPF_PROG_TEST_RUN, which reports the mean ns per run),
and each figure is the median of `--rounds` such runs: a source denied by a /24, by a
prefix of /16 or shorter, by a /32, and an allowed source (the miss path, what legit
traffic pays). The same harness runs a program that only returns XDP_PASS, so the reader
sees what the harness itself costs. Rules are measured both guarding every port and
scoped to a site's ports (80 and 443), as the planner scopes `remote_ip` denies.

No Caddy here: Caddy has no packet-level layer to compare with. Needs root (loads BPF).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from benchlib import (
    BenchError,
    command_line,
    fail,
    fmt_num,
    machine_line,
    md_table,
    median,
    parse_args,
    publish,
)
from zeroserve.datapath import build, libbpf, pins
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan.model import DenyRule, XdpPlan

GOAL_NS = 50.0
RULES = 16  # the prefixes are dealt out to this many rules, as several remote_ip lines would
SITE_PORTS = (80, 443)
# Share of each prefix length in the list: block lists are mostly single hosts and /24s,
# with a few provider ranges, and a handful of /8s.
LENGTHS = (
    [(32, 0.458), (24, 0.46), (16, 0.01)]
    + [(n, 0.04 / 7) for n in range(17, 24)]
    + [(n, 0.03 / 7) for n in range(25, 32)]
    + [(n, 0.0018 / 7) for n in range(9, 16)]
)
SLASH8S = 4
PASS_SOURCE = """
#include <uapi/linux/bpf.h>
int zs_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
"""


@dataclass
class Corpus:
    prefixes: list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network]
    packets: dict[str, bytes]  # case -> frame


def make_corpus6(count: int, seed: int) -> Corpus:
    """count random IPv6 prefixes (/128 hosts, /64, /48 and /32 ranges), without nesting."""
    rng = random.Random(seed)
    nets: set[ipaddress.IPv6Network] = set()
    while len(nets) < count:
        length = rng.choices((128, 64, 48, 32), (4, 3, 2, 1))[0]
        addr = (0x2 << 124 | rng.getrandbits(124)) >> (128 - length) << (128 - length)
        nets.add(ipaddress.IPv6Network((addr, length)))
    prefixes = sorted(nets)
    ranges = [n for n in prefixes if n.prefixlen < 128]
    hosts = [n for n in prefixes if n.prefixlen == 128]
    inside = rng.choice(ranges)
    sources = {
        "denied by a /32-/64": inside.network_address + rng.randrange(inside.num_addresses),
        "denied by a /128": rng.choice(hosts).network_address,
        # 3000::/4 holds no prefix of the list (all are in 2000::/4).
        "allowed (no rule holds it)": ipaddress.IPv6Address(0x3 << 124 | rng.getrandbits(124)),
    }
    packets = {
        case: bytes(Ether() / IPv6(src=str(src)) / TCP(sport=40000, dport=443, flags="S"))
        for case, src in sources.items()
    }
    return Corpus(prefixes, packets)


def make_corpus(count: int, seed: int) -> Corpus:
    """count distinct random prefixes, and one source address for each case."""
    rng = random.Random(seed)
    lengths, weights = zip(*LENGTHS, strict=True)
    nets: set[ipaddress.IPv4Network] = set()
    while len(nets) < SLASH8S:
        # Not 0/8, 127/8 or multicast and above: a source there never reaches the hook.
        nets.add(ipaddress.IPv4Network((rng.randrange(1, 224) << 24, 8)))
    while len(nets) < count:
        length = rng.choices(lengths, weights)[0]
        addr = rng.getrandbits(32) & ~((1 << (32 - length)) - 1)
        nets.add(ipaddress.IPv4Network((addr, length)))
    prefixes = sorted(nets)
    by_length: dict[int, list[ipaddress.IPv4Network]] = {}
    for net in prefixes:
        by_length.setdefault(net.prefixlen, []).append(net)

    def longest(addr: int) -> int:
        """The length of the longest prefix holding addr, 0 if none."""
        for length in range(32, 7, -1):
            net = ipaddress.IPv4Network((addr & ~((1 << (32 - length)) - 1), length))
            if net in nets:
                return length
        return 0

    def source(want: range) -> str:
        while True:
            addr = rng.getrandbits(32)
            if (addr >> 24) not in (0, 127) and addr >> 28 < 14 and longest(addr) in want:
                return str(ipaddress.IPv4Address(addr))

    def inside(pool: list[ipaddress.IPv4Network]) -> str:
        # A random address of a random prefix of the pool, that no longer prefix holds.
        while True:
            net = rng.choice(pool)
            addr = int(net.network_address) + rng.randrange(net.num_addresses)
            if longest(addr) == net.prefixlen:
                return str(ipaddress.IPv4Address(addr))

    short = [n for n in prefixes if n.prefixlen <= 16]
    sources = {
        "denied by a /24": inside(by_length[24]),
        "denied by a /16 or shorter": inside(short),
        "denied by a /32": inside(by_length[32]),
        "allowed (no rule holds it)": source(range(0, 1)),
    }
    packets = {
        case: bytes(
            Ether() / IP(src=src, dst="198.18.0.1") / TCP(sport=40000, dport=443, flags="S")
        )
        for case, src in sources.items()
    }
    return Corpus(prefixes, packets)


def plan_for(prefixes: list[ipaddress.IPv4Network], ports: tuple[int, ...]) -> XdpPlan:
    rules: dict[int, list[str]] = {}
    for n, net in enumerate(prefixes):
        rules.setdefault(1 + n % RULES, []).append(str(net))
    return XdpPlan(deny=[DenyRule(i, tuple(p), ports) for i, p in rules.items()])


def ns_per_packet(fd: int, packet: bytes, repeat: int, rounds: int) -> tuple[float, int]:
    """Median over rounds of the kernel's mean ns per run, and the verdict."""
    runs = [libbpf.prog_test_run(fd, packet, repeat=repeat) for _ in range(rounds)]
    return median([r.duration_ns for r in runs]), runs[0].retval


def reload_seconds(xdp: XdpLayer, corpus: Corpus, ports: tuple[int, ...]) -> float:
    """Median time of a map-only reload that moves one /24 of the list, back and forth,
    once each table generation has been written whole."""
    moved = list(corpus.prefixes)
    at = next(n for n, net in enumerate(moved) if net.prefixlen == 24)
    moved[at] = next(
        net
        for net in (
            ipaddress.IPv4Network((int(moved[at].network_address) + (k << 8), 24))
            for k in range(1, 256)
        )
        if net not in set(corpus.prefixes)
    )
    plans = [plan_for(moved, ports), plan_for(corpus.prefixes, ports)]
    xdp.apply(plans[0])
    times = []
    for n in range(4):
        start = time.perf_counter()
        xdp.apply(plans[(n + 1) % 2])
        times.append(time.perf_counter() - start)
    return median(times)


@contextmanager
def bench_layout() -> Iterator[pins.PinLayout]:
    pins.ensure_bpffs()
    layout = pins.PinLayout(pins.BPFFS / f"zeroserve-bench-{uuid.uuid4().hex[:12]}")
    try:
        yield layout
    finally:
        layout.remove_all()


@dataclass
class Scope:
    name: str
    load_error: str = ""
    write_s: float = 0.0
    reload_s: float | None = None
    insns: int = 0
    ns: dict[str, float] | None = None
    verdicts: dict[str, int] | None = None


def measure(args: argparse.Namespace, corpus: Corpus, corpus6: Corpus) -> tuple[float, list[Scope]]:
    out = []
    with bench_layout() as layout:
        with build.build(
            PASS_SOURCE, [build.ProgramSpec("zs_pass", libbpf.PROG_TYPE_XDP)], layout
        ) as empty:
            baseline, _ = ns_per_packet(
                empty.fd("zs_pass"),
                corpus.packets["allowed (no rule holds it)"],
                args.repeat,
                args.rounds,
            )
        for name, ports, within in (
            ("every port", (), corpus),
            ("ports 80, 443", SITE_PORTS, corpus),
            (f"IPv6 ({len(corpus6.prefixes):,}), every port", (), corpus6),
        ):
            scope = Scope(name)
            out.append(scope)
            plan = plan_for(within.prefixes, ports)
            try:
                xdp = XdpLayer.load(XdpFeatures.for_plan(plan), layout)
            except build.BuildError as err:
                scope.load_error = str(err).splitlines()[-1]
                continue
            with xdp:
                start = time.perf_counter()
                try:
                    xdp.apply(plan)
                except (OSError, ValueError) as err:
                    scope.load_error = str(err)
                    continue
                finally:
                    scope.write_s = time.perf_counter() - start
                scope.insns = xdp.built.programs["zs_xdp"].info.xlated_insns
                scope.ns, scope.verdicts = {}, {}
                for case, packet in within.packets.items():
                    ns, verdict = ns_per_packet(xdp.prog_fd, packet, args.repeat, args.rounds)
                    scope.ns[case], scope.verdicts[case] = ns, verdict
                if within is corpus:
                    scope.reload_s = reload_seconds(xdp, corpus, ports)
            layout.remove_all()
    return baseline, out


XDP_DROP, XDP_PASS = 1, 2


def report(args: argparse.Namespace, corpus: Corpus, baseline: float, scopes: list[Scope]) -> str:
    counts: dict[int, int] = {}
    for net in corpus.prefixes:
        counts[net.prefixlen] = counts.get(net.prefixlen, 0) + 1
    mix = ", ".join(
        f"/{length}: {counts[length]:,}" for length in (32, 24, 16, 8) if length in counts
    )
    rows = []
    verdicts = []
    for scope in scopes:
        if scope.ns is None or scope.verdicts is None:
            rows.append([scope.name, f"rules do not load: {scope.load_error}", "", "", ""])
            continue
        for case, ns in scope.ns.items():
            want = XDP_PASS if case.startswith("allowed") else XDP_DROP
            got = scope.verdicts[case]
            ok = "yes" if got == want else f"NO (verdict {got})"
            rows.append([scope.name, case, fmt_num(ns, 1), fmt_num(ns - baseline, 1), ok])
        if scope.reload_s is None:  # IPv6: no goal
            continue
        worst = max(ns for case, ns in scope.ns.items() if case.startswith("denied"))
        met = "met" if worst <= GOAL_NS else "not met"
        verdicts.append(
            f"{scope.name}: worst deny case {worst:.1f} ns → {met} (program "
            f"{scope.insns:,} instructions; the list written in {scope.write_s:.2f} s, a "
            f"reload moving one /24 {scope.reload_s:.2f} s)"
        )
    table = md_table(
        ["rules guard", "case", "ns per packet", "ns above the empty program", "right verdict"],
        rows,
    )
    return f"""`{command_line()}` — {machine_line()}.

{len(corpus.prefixes):,} distinct random IPv4 prefixes (seed {args.seed}; {mix}, the rest
spread over /9–/31) dealt out to {RULES} deny rules, written by `XdpLayer.apply` into the maps
of the program `XdpFeatures.for_plan` builds for them. Each case is a TCP SYN to port 443 run
{args.repeat:,} times by BPF_PROG_TEST_RUN (the kernel's mean ns per run); figures are medians
of {args.rounds} such runs. The same harness runs a program that only returns XDP_PASS:
**{baseline:.1f} ns**, the harness's own share of every figure. The same packet every run
keeps the maps' lines in cache: this is the program's cost, not a cache-cold one. A reload
re-plans the whole list in the agent (Python) and writes only the table cells that change.
IPv6 rules (a hash for /128, an LPM trie for the rest, behind a bitmap of their first
24 bits) are shown for {args.prefixes6:,}
random prefixes in 2000::/4, mostly /128 and /64, with no goal set for them.

{table}

Goal (deny path at most {GOAL_NS:.0f} ns per packet with 100,000 prefixes):
{"; ".join(verdicts)}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=100_000, help="deny prefixes")
    parser.add_argument("--repeat", type=int, default=1_000_000, help="runs per measurement")
    parser.add_argument("--prefixes6", type=int, default=10_000, help="IPv6 deny prefixes")
    parser.add_argument("--seed", type=int, default=6, help="seed of the random prefixes")
    args = parse_args(parser, default_rounds=5)
    if os.geteuid() != 0:
        fail("needs root: it loads BPF programs")
    corpus = make_corpus(args.prefixes, args.seed)
    baseline, scopes = measure(args, corpus, make_corpus6(args.prefixes6, args.seed))
    body = report(args, corpus, baseline, scopes)
    publish(body, args, "deny", "XDP deny path")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        fail(str(exc))
