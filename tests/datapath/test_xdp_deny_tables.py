"""The deny tables (datapath/deny.py, bpf/include/deny.h) against a plain longest-match
oracle: random overlapping rule sets of every prefix length and scope go through the
production loader, and random sources through BPF_PROG_TEST_RUN, over several reloads so
that both table generations are filled whole, flipped, then rewritten cell by cell."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from zeroserve.datapath import deny, libbpf
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan.model import DenyRule, XdpPlan

XDP_DROP, XDP_PASS = 1, 2
SCOPES = [(), (), (80,), (80, 443), (8080,)]
PORTS = [80, 443, 8080, 9090, 0]  # 0: a packet without ports (ICMP), only every-port rules


def _random_prefix(rng: random.Random, seeds4: list[int], seeds6: list[int]) -> str:
    # Few seeds and few random low bits: prefixes nest, share /24 blocks and words.
    if rng.random() < 0.15:
        length = rng.choice([16, 48, 64, 120, 127, 128])
        addr = rng.choice(seeds6) ^ rng.getrandbits(rng.choice([8, 40, 100]))
        return str(ipaddress.IPv6Network((addr >> (128 - length) << (128 - length), length)))
    length = rng.choice([8, 12, 16, 17, 20, 23, 24, 24, 25, 28, 30, 31, 32, 32, 32])
    addr = rng.choice(seeds4) ^ rng.getrandbits(rng.choice([4, 8, 10, 14, 20, 26]))
    return str(ipaddress.IPv4Network((addr >> (32 - length) << (32 - length), length)))


def _random_plan(rng: random.Random, rules: int, per_rule: int) -> XdpPlan:
    seeds4 = [rng.getrandbits(32) for _ in range(3)]
    seeds6 = [rng.getrandbits(128) for _ in range(2)]
    # A shared pool, so the same prefix often sits in several rules of other scopes.
    pool = [_random_prefix(rng, seeds4, seeds6) for _ in range(per_rule * 2)]
    out = []
    for rule in range(1, rules + 1):
        prefixes = {rng.choice(pool) for _ in range(per_rule // 2)}
        prefixes |= {_random_prefix(rng, seeds4, seeds6) for _ in range(per_rule // 2)}
        out.append(DenyRule(rule, tuple(sorted(prefixes)), rng.choice(SCOPES)))
    return XdpPlan(deny=out)


def _oracle(plan: XdpPlan, source: str, port: int) -> int:
    """The rule that wins for a packet: longest prefix, then a per-port rule, then the lower id."""
    addr = ipaddress.ip_address(source)
    best: tuple[int, int, int] | None = None
    for r in plan.deny:
        if r.ports and port not in r.ports:
            continue
        for p in r.prefixes:
            net = ipaddress.ip_network(p)
            if net.version == addr.version and addr in net:
                key = (net.prefixlen, bool(r.ports), -r.id)
                best = key if best is None or key > best else best
    return -best[2] if best else 0


def _sources(rng: random.Random, plans: list[XdpPlan], count: int) -> list[str]:
    # Mostly inside or next to a prefix of these plans (the edges matter; the plans before
    # the current one find leftovers), some anywhere.
    out = []
    nets = [ipaddress.ip_network(p) for plan in plans for r in plan.deny for p in r.prefixes]
    for _ in range(count):
        net = rng.choice(nets)
        pick = rng.random()
        if pick < 0.7:
            addr = int(net.network_address) + rng.randrange(net.num_addresses)
        elif pick < 0.85:
            addr = int(net.broadcast_address) + 1
        else:
            addr = rng.getrandbits(net.max_prefixlen)
        out.append(str(ipaddress.ip_address(addr % (1 << net.max_prefixlen))))
    return out


def _packet(source: str, port: int) -> bytes:
    ip = IPv6(src=source) if ":" in source else IP(src=source)
    l4 = UDP(dport=port) if port else b""
    return bytes(Ether() / ip / l4) if port else bytes(Ether() / ip)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tables_match_longest_prefix_oracle_across_reloads(layout, seed):
    rng = random.Random(seed)
    plans = [_random_plan(rng, rules=6, per_rule=12) for _ in range(4)]
    with XdpLayer.load(XdpFeatures(), layout) as xdp:
        for n, plan in enumerate(plans):
            xdp.apply(plan)
            for source in _sources(rng, plans[: n + 1], 160):
                port = rng.choice(PORTS)
                want = _oracle(plan, source, port)
                before = xdp.rule_counter(want).packets if want else 0
                run = libbpf.prog_test_run(xdp.prog_fd, _packet(source, port))
                where = f"seed {seed}: {source} port {port}"
                assert run.retval == (XDP_DROP if want else XDP_PASS), where
                if want:
                    assert xdp.rule_counter(want).packets == before + 1, where


def test_layers_sharing_the_maps_take_turns(layout):
    """A layer that did not write last knows nothing of what is in the maps (as when a
    staged program is discarded and the running one's rules are written again)."""
    rng = random.Random(9)
    plans = [_random_plan(rng, rules=4, per_rule=10) for _ in range(5)]
    with (
        XdpLayer.load(XdpFeatures(), layout) as first,
        XdpLayer.load(XdpFeatures(), layout) as second,
    ):
        # The second rewrites the generation the first wrote; the first writes it next.
        writers = (first, second, second, first, first)
        for n, (plan, writer) in enumerate(zip(plans, writers, strict=True)):
            writer.apply(plan)
            for source in _sources(rng, plans[: n + 1], 100):
                want = _oracle(plan, source, 443)
                run = libbpf.prog_test_run(first.prog_fd, _packet(source, 443))
                assert run.retval == (XDP_DROP if want else XDP_PASS), f"{source} after {n}"


def test_programs_share_the_deny_maps_only_with_the_same_class_count(layout):
    # Slots are generation * classes + class: another count reads other keys.
    v6 = XdpFeatures(deny_v4=False, deny_classes=2)
    with (
        XdpLayer.load(v6, layout) as first,
        XdpLayer.load(v6, layout) as same,
        XdpLayer.load(replace(v6, deny_classes=4), layout) as other,
    ):
        ids = [x.maps["zs_deny6_host"].info.id for x in (first, same, other)]
        assert ids[0] == ids[1] != ids[2]


def test_for_plan_compiles_only_the_tiers_in_use(layout):
    plan = XdpPlan(deny=[DenyRule(1, ("203.0.113.0/24", "192.0.2.7"), (443,))])
    features = XdpFeatures.for_plan(plan)
    assert (features.deny4_hosts, features.deny4_net24, features.deny4_net16) == (
        True,
        True,
        False,
    )
    assert features.deny_classes == 2  # ports no rule names, and port 443
    with XdpLayer.load(features, layout) as xdp:
        xdp.apply(plan)
        assert "zs_deny4_net16" not in xdp.maps
        with pytest.raises(ValueError, match="/8 prefixes is not compiled in"):
            xdp.set_deny({1: ["10.0.0.0/8"]})
        # The refused rules changed nothing.
        assert xdp.deny_entries() == {"192.0.2.7/32 :443": 1, "203.0.113.0/24 :443": 1}
        src = bytes(Ether() / IP(src="192.0.2.7") / TCP(dport=443, flags="S"))
        assert libbpf.prog_test_run(xdp.prog_fd, src).retval == XDP_DROP


def test_more_port_sets_than_compiled_are_refused(layout):
    with XdpLayer.load(XdpFeatures(deny_classes=2), layout) as xdp:
        xdp.set_deny({1: ["203.0.113.0/24"]}, {1: [80]})
        with pytest.raises(
            ValueError, match="guard 2 distinct sets of ports; the program is built for 1"
        ):
            xdp.set_deny({1: ["203.0.113.0/24"], 2: ["198.51.100.0/24"]}, {1: [80], 2: [443]})
        assert xdp.deny_entries() == {"203.0.113.0/24 :80": 1}


def test_classes_group_ports_by_the_rules_guarding_them():
    version, addr, length = deny.parse_prefix("203.0.113.9/24")
    assert (version, addr, length) == (4, 0xCB007100, 24)
    entries = [
        deny.Entry(version, addr, length, port, rule)
        for port, rule in ((80, 1), (443, 1), (8080, 2), (0, 3))
    ]
    port_class, classes = deny.classes_of(entries)
    assert classes == 3
    assert port_class[80] == port_class[443] != port_class[8080]
    assert 0 not in port_class.values()


def test_drop_records_are_sampled_past_the_first_64(layout):
    with XdpLayer.load(XdpFeatures(), layout) as xdp:
        xdp.set_deny({5: ["198.51.100.0/24"]})
        packet = bytes(Ether() / IP(src="198.51.100.9") / TCP(dport=443, flags="S"))
        # One test run stays on one CPU: its first 64 drops are each recorded, then
        # every 64th, standing for 64.
        assert libbpf.prog_test_run(xdp.prog_fd, packet, repeat=1000).retval == XDP_DROP
        (drop,) = xdp.drops()
        assert (drop.source, drop.rule, drop.packets) == ("198.51.100.9", 5, 1000 - 1000 % 64)
        assert xdp.rule_counter(5).packets == 1000


@pytest.mark.parametrize(
    "text",
    ["203.0.113.77/24", "192.0.2.7", "0.0.0.0/0", "10.1.2.3/8", "2001:db8::1/48", "::/0"],
)
def test_parse_prefix_agrees_with_ipaddress(text):
    net = ipaddress.ip_network(text, strict=False)
    assert deny.parse_prefix(text) == (net.version, int(net.network_address), net.prefixlen)


@pytest.mark.parametrize(
    "text", ["not-an-address", "203.0.113.0/33", "203.0.113.0/", "203.0.113/24", "1.2.3.4/x"]
)
def test_parse_prefix_refuses_what_ipaddress_refuses(text):
    with pytest.raises(ValueError):
        ipaddress.ip_network(text, strict=False)
    with pytest.raises(ValueError):
        deny.parse_prefix(text)
