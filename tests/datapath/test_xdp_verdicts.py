"""The rendered XDP program run through BPF_PROG_TEST_RUN over scapy-built packets.

A table in the manner of Katran's test fixtures: description, packet, expected
verdict, expected reason and rule. The program is the real template rendered
for the features under test, loaded by the production loader."""

from __future__ import annotations

import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from zeroserve.datapath import libbpf
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer

XDP_DROP, XDP_PASS = 1, 2

RULES = {
    1: ["203.0.113.0/24"],
    2: ["192.0.2.7"],
    3: ["2001:db8:dead::/48"],
    4: ["2001:db8::1/128"],
    5: ["10.0.0.0/8", "172.16.0.0/12"],
    6: ["10.1.2.3/32"],
}

SYN = TCP(sport=40000, dport=443, flags="S")

CASES = [
    (
        "v4 source in a /24 rule",
        Ether() / IP(src="203.0.113.9", dst="198.18.0.1") / SYN,
        XDP_DROP,
        "deny",
        1,
    ),
    (
        "v4 source just outside the /24",
        Ether() / IP(src="203.0.114.9", dst="198.18.0.1") / SYN,
        XDP_PASS,
        "pass",
        0,
    ),
    (
        "v4 /32 rule is exact",
        Ether() / IP(src="192.0.2.7", dst="198.18.0.1") / SYN,
        XDP_DROP,
        "deny",
        2,
    ),
    (
        "v4 neighbour of the /32",
        Ether() / IP(src="192.0.2.8", dst="198.18.0.1") / SYN,
        XDP_PASS,
        "pass",
        0,
    ),
    (
        "v4 host rule beats the /8 holding it",
        Ether() / IP(src="10.1.2.3") / UDP(dport=53),
        XDP_DROP,
        "deny",
        6,
    ),
    ("v4 rest of the /8", Ether() / IP(src="10.1.2.4") / UDP(dport=53), XDP_DROP, "deny", 5),
    ("second prefix of a rule", Ether() / IP(src="172.31.255.255") / ICMP(), XDP_DROP, "deny", 5),
    (
        "only the source counts",
        Ether() / IP(src="198.18.0.2", dst="203.0.113.9") / SYN,
        XDP_PASS,
        "pass",
        0,
    ),
    ("802.1Q tagged", Ether() / Dot1Q(vlan=7) / IP(src="203.0.113.1") / SYN, XDP_DROP, "deny", 1),
    (
        "QinQ tagged",
        Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=9) / IP(src="203.0.113.1") / SYN,
        XDP_DROP,
        "deny",
        1,
    ),
    (
        "v4 with options",
        Ether() / IP(src="203.0.113.1", options=b"\x01\x01\x01\x00") / SYN,
        XDP_DROP,
        "deny",
        1,
    ),
    (
        "v6 source in a /48 rule",
        Ether() / IPv6(src="2001:db8:dead:beef::5") / SYN,
        XDP_DROP,
        "deny",
        3,
    ),
    ("v6 /128 rule", Ether() / IPv6(src="2001:db8::1") / SYN, XDP_DROP, "deny", 4),
    ("v6 neighbour of the /128", Ether() / IPv6(src="2001:db8::2") / SYN, XDP_PASS, "pass", 0),
    ("ARP is not IP", Ether() / ARP(psrc="203.0.113.9"), XDP_PASS, "pass", 0),
    ("VLAN tag cut short", bytes(Ether(type=0x8100))[:14] + b"\x00\x07", XDP_PASS, "malformed", 0),
    (
        "truncated IPv4 header",
        bytes(Ether() / IP(src="203.0.113.9"))[: 14 + 12],
        XDP_PASS,
        "malformed",
        0,
    ),
    ("IPv4 IHL below 5", Ether() / IP(src="203.0.113.9", ihl=4) / SYN, XDP_PASS, "malformed", 0),
    (
        "IPv4 IHL past the end",
        bytes(Ether() / IP(src="203.0.113.9", ihl=15))[: 14 + 24],
        XDP_PASS,
        "malformed",
        0,
    ),
    (
        "version 6 in an IPv4 frame",
        Ether(type=0x0800) / IPv6(src="2001:db8::1"),
        XDP_PASS,
        "malformed",
        0,
    ),
    (
        "truncated IPv6 header",
        bytes(Ether() / IPv6(src="2001:db8::1"))[: 14 + 20],
        XDP_PASS,
        "malformed",
        0,
    ),
]


@pytest.fixture(scope="module")
def loaded(module_layout):
    with XdpLayer.load(XdpFeatures(), module_layout) as xdp:
        xdp.set_deny(RULES)
        yield xdp


@pytest.mark.parametrize(
    ("desc", "packet", "verdict", "reason", "rule"), CASES, ids=[c[0] for c in CASES]
)
def test_verdict(loaded, desc, packet, verdict, reason, rule):
    data = bytes(packet)
    before_reason = loaded.verdict_counters()[reason]
    before_rule = loaded.rule_counter(rule) if rule else None
    run = libbpf.prog_test_run(loaded.prog_fd, data)
    assert run.retval == verdict, desc
    assert run.data_out == data, "the filter must not touch the packet"
    after_reason = loaded.verdict_counters()[reason]
    assert after_reason.packets - before_reason.packets == 1
    assert after_reason.bytes - before_reason.bytes == len(data)
    if rule:
        after_rule = loaded.rule_counter(rule)
        assert after_rule.packets - before_rule.packets == 1
        assert after_rule.bytes - before_rule.bytes == len(data)


def test_repeat_counts_every_run(loaded):
    data = bytes(Ether() / IP(src="192.0.2.7") / SYN)
    before = loaded.rule_counter(2)
    assert libbpf.prog_test_run(loaded.prog_fd, data, repeat=1000).retval == XDP_DROP
    after = loaded.rule_counter(2)
    assert (after.packets - before.packets, after.bytes - before.bytes) == (1000, 1000 * len(data))


def test_vlan_off_passes_tagged_frames(layout):
    with XdpLayer.load(XdpFeatures(vlan=False), layout) as xdp:
        xdp.set_deny(RULES)
        tagged = bytes(Ether() / Dot1Q(vlan=7) / IP(src="203.0.113.1") / SYN)
        plain = bytes(Ether() / IP(src="203.0.113.1") / SYN)
        assert libbpf.prog_test_run(xdp.prog_fd, tagged).retval == XDP_PASS
        assert libbpf.prog_test_run(xdp.prog_fd, plain).retval == XDP_DROP


def test_v6_off_compiles_no_v6_lookup(layout):
    with XdpLayer.load(XdpFeatures(deny_v6=False), layout) as xdp:
        with pytest.raises(ValueError, match="IPv6 deny is not compiled in"):
            xdp.set_deny({3: ["2001:db8:dead::/48"]})
        xdp.set_deny({1: ["203.0.113.0/24"]})
        v6 = bytes(Ether() / IPv6(src="2001:db8:dead::5") / SYN)
        assert libbpf.prog_test_run(xdp.prog_fd, v6).retval == XDP_PASS
        assert not any(name.startswith("zs_deny6") for name in xdp.maps)


def test_drops_are_sampled_by_source_reason_and_rule(layout):
    with XdpLayer.load(XdpFeatures(), layout) as xdp:
        xdp.set_deny(RULES)
        denied = bytes(Ether() / IP(src="192.0.2.7") / SYN)
        passed = bytes(Ether() / IP(src="198.51.100.1") / SYN)
        denied6 = bytes(Ether() / IPv6(src="2001:db8::1") / SYN)
        before = time.monotonic_ns()
        assert libbpf.prog_test_run(xdp.prog_fd, denied, repeat=5).retval == XDP_DROP
        assert libbpf.prog_test_run(xdp.prog_fd, passed).retval == XDP_PASS
        libbpf.prog_test_run(xdp.prog_fd, denied6)
        drops = {d.source: d for d in xdp.drops()}
        assert set(drops) == {"192.0.2.7", "2001:db8::1"}
        assert drops["2001:db8::1"][1:3] == ("deny", 4)
        first = drops["192.0.2.7"]
        assert (first.reason, first.rule, first.packets) == ("deny", 2, 5)
        assert before <= first.first_ns <= first.last_ns <= time.monotonic_ns()
