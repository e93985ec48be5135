"""The XDP program's per-port checks through BPF_PROG_TEST_RUN: deny rules scoped to
a listener's port, dropping SYNs to unserved ports, and per-source connection rates."""

from __future__ import annotations

import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from zeroserve.datapath import libbpf
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan.model import DenyRule, RateRule, XdpPlan

XDP_DROP, XDP_PASS = 1, 2


def syn(src: str, dport: int, flags: str = "S") -> bytes:
    ip = IPv6(src=src) if ":" in src else IP(src=src)
    return bytes(Ether() / ip / TCP(sport=40000, dport=dport, flags=flags))


def verdict(xdp: XdpLayer, packet: bytes) -> int:
    return libbpf.prog_test_run(xdp.prog_fd, packet).retval


@pytest.fixture(scope="module")
def full(module_layout):
    with XdpLayer.load(XdpFeatures(drop_unserved=True, rate=True), module_layout) as xdp:
        yield xdp


def test_deny_scoped_to_a_port(full):
    full.set_deny({1: ["203.0.113.0/24", "2001:db8::/32"], 2: ["192.0.2.7"]}, {1: [8080]})
    assert full.deny_entries() == {
        "203.0.113.0/24 :8080": 1,
        "2001:db8::/32 :8080": 1,
        "192.0.2.7/32": 2,
    }
    full.set_open_ports([22, 8080, 9090])
    assert verdict(full, syn("203.0.113.5", 8080)) == XDP_DROP
    assert verdict(full, syn("2001:db8::5", 8080)) == XDP_DROP
    assert verdict(full, syn("203.0.113.5", 9090)) == XDP_PASS  # another listener
    assert verdict(full, bytes(Ether() / IP(src="203.0.113.5") / ICMP())) == XDP_PASS
    udp = bytes(Ether() / IP(src="203.0.113.5") / UDP(dport=8080))
    assert verdict(full, udp) == XDP_DROP  # HTTP/3 shares the port
    assert verdict(full, syn("192.0.2.7", 9090)) == XDP_DROP  # every-port rule
    assert verdict(full, bytes(Ether() / IP(src="192.0.2.7") / ICMP())) == XDP_DROP


def test_later_fragments_meet_only_every_port_rules(full):
    full.set_deny({1: ["203.0.113.0/24"]}, {1: [8080]})
    first = Ether() / IP(src="203.0.113.5", flags="MF") / TCP(dport=8080, flags="S")
    later = Ether() / IP(src="203.0.113.5", frag=3, proto=6) / (b"x" * 24)
    assert verdict(full, bytes(first)) == XDP_DROP
    assert verdict(full, bytes(later)) == XDP_PASS


def test_unserved_ports_drop_only_new_connections(full):
    full.set_deny({})
    full.set_open_ports([22, 8080])
    before = full.verdict_counters()["unserved"].packets
    assert verdict(full, syn("198.18.0.2", 8080)) == XDP_PASS
    assert verdict(full, syn("198.18.0.2", 22)) == XDP_PASS
    assert verdict(full, syn("198.18.0.2", 3306)) == XDP_DROP
    assert verdict(full, syn("2001:db8::2", 3306)) == XDP_DROP
    # Replies to the box's own connections (SYN-ACK, ACK) and UDP pass.
    assert verdict(full, syn("198.18.0.2", 45000, "SA")) == XDP_PASS
    assert verdict(full, syn("198.18.0.2", 45000, "A")) == XDP_PASS
    assert verdict(full, bytes(Ether() / IP(src="198.18.0.2") / UDP(dport=45000))) == XDP_PASS
    assert full.verdict_counters()["unserved"].packets == before + 2


def test_rate_limit_per_source(full):
    full.set_deny({})
    full.set_open_ports([8080])
    window = 3_600 * 10**9  # refill is negligible during the test
    full.set_rates([RateRule(7, (8080,), 3, window)])
    before = full.rule_counter(7).packets
    verdicts = [verdict(full, syn("198.51.100.1", 8080)) for _ in range(5)]
    assert verdicts == [XDP_PASS] * 3 + [XDP_DROP] * 2
    # Another source has its own bucket; established traffic is never limited.
    assert verdict(full, syn("198.51.100.2", 8080)) == XDP_PASS
    assert verdict(full, syn("198.51.100.1", 8080, "A")) == XDP_PASS
    assert full.rule_counter(7).packets == before + 2
    assert full.verdict_counters()["rate"].packets >= 2


def test_rate_bucket_refills(full):
    full.set_open_ports([8080])
    full.set_rates([RateRule(8, (8080,), 2, 200_000_000)])  # 2 per 200 ms
    src = "198.51.100.9"
    assert [verdict(full, syn(src, 8080)) for _ in range(3)] == [XDP_PASS, XDP_PASS, XDP_DROP]
    time.sleep(0.25)
    assert verdict(full, syn(src, 8080)) == XDP_PASS


def test_rate_rule_checked(full):
    with pytest.raises(ValueError, match="rule 9: 0 events"):
        full.set_rates([RateRule(9, (8080,), 0, 10**9)])


def test_for_plan_builds_the_smallest_program(layout):
    plan = XdpPlan(deny=[DenyRule(3, ("203.0.113.0/24",), (8080,))])
    features = XdpFeatures.for_plan(plan)
    assert (features.deny_v4, features.deny_v6, features.rate) == (True, False, False)
    with XdpLayer.load(features, layout) as xdp:
        xdp.apply(plan)
        assert sorted(xdp.maps) == [
            "zs_deny4_blocks",
            "zs_deny4_chunks",
            "zs_deny4_net24",
            "zs_deny4_rules",
            "zs_deny_gen",
            "zs_deny_ports",
            "zs_drops",
            "zs_rule_stats",
            "zs_verdicts",
        ]
        assert verdict(xdp, syn("203.0.113.1", 8080)) == XDP_DROP
        assert xdp.rule_counter(3).packets == 1
        with pytest.raises(ValueError, match="not compiled in"):
            xdp.set_open_ports([80])
