"""The rendered TC programs through BPF_PROG_TEST_RUN: each case is a packet built
with scapy, and the packet the program must leave, built with scapy from the
rewritten fields, so every checksum in it is scapy's own."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from zeroserve.datapath import libbpf
from zeroserve.datapath.tc import TcFeatures, TcLayer
from zeroserve.plan.model import Site

TC_ACT_OK = 0
L2 = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
SITE4, SITE6, PEER4, PEER6 = "198.18.0.1", "2001:db8::1", "198.18.0.2", "2001:db8::2"
SITES = [
    Site(1, SITE4, 8080, 46, 1200),  # EF, clamp
    Site(2, "", 9090, 10, None),  # AF11 on every address, no clamp
    Site(3, SITE6, 8443, 34, 1200),  # AF41, clamp
    Site(4, SITE4, 7070, None, 1300),  # clamp only
]
OPTS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 0))]
OPTS_MSS_LAST = [("NOP", None), ("NOP", None), ("Timestamp", (1, 0)), ("MSS", 1460)]


def tcp(sport, dport, flags="SA", options=OPTS, payload=b""):
    return TCP(sport=sport, dport=dport, flags=flags, seq=7, ack=9, options=options) / payload


def mss(options, value):
    return [(k, value if k == "MSS" else v) for k, v in options]


# description, direction, packet in, packet out (None: untouched), site id counted
CASES = [
    (
        "egress SYN-ACK: DSCP set, ECN kept, MSS clamped",
        "egress",
        L2 / IP(src=SITE4, dst=PEER4, tos=0x02) / tcp(8080, 40000),
        L2
        / IP(src=SITE4, dst=PEER4, tos=(46 << 2) | 0x02)
        / tcp(8080, 40000, options=mss(OPTS, 1200)),
        1,
    ),
    (
        "egress data: DSCP set, payload intact",
        "egress",
        L2 / IP(src=SITE4, dst=PEER4, tos=0x03) / tcp(8080, 40000, "PA", [], b"hello"),
        L2 / IP(src=SITE4, dst=PEER4, tos=(46 << 2) | 0x03) / tcp(8080, 40000, "PA", [], b"hello"),
        1,
    ),
    (
        "egress MSS option after others",
        "egress",
        L2 / IP(src=SITE4, dst=PEER4) / tcp(7070, 40000, options=OPTS_MSS_LAST),
        L2 / IP(src=SITE4, dst=PEER4) / tcp(7070, 40000, options=mss(OPTS_MSS_LAST, 1300)),
        4,
    ),
    (
        "MSS already below the clamp",
        "egress",
        L2 / IP(src=SITE4, dst=PEER4) / tcp(7070, 40000, options=[("MSS", 1000)]),
        None,
        4,
    ),
    (
        "ingress SYN to the site: MSS clamped, DS field left alone",
        "ingress",
        L2 / IP(src=PEER4, dst=SITE4, tos=0x20) / tcp(40000, 8080, "S"),
        L2 / IP(src=PEER4, dst=SITE4, tos=0x20) / tcp(40000, 8080, "S", mss(OPTS, 1200)),
        1,
    ),
    (
        "ingress non-SYN untouched",
        "ingress",
        L2 / IP(src=PEER4, dst=SITE4) / tcp(40000, 8080, "A", [("MSS", 9000)]),
        None,
        1,
    ),
    (
        "wildcard site, IPv4 UDP (HTTP/3): UDP checksum unaffected",
        "egress",
        L2 / IP(src="198.18.7.7", dst=PEER4) / UDP(sport=9090, dport=40000) / b"quic",
        L2 / IP(src="198.18.7.7", dst=PEER4, tos=10 << 2) / UDP(sport=9090, dport=40000) / b"quic",
        2,
    ),
    (
        "wildcard site, IPv6",
        "egress",
        L2 / IPv6(src="2001:db8::77", dst=PEER6, fl=0xABCDE) / tcp(9090, 40000, "PA", []),
        L2
        / IPv6(src="2001:db8::77", dst=PEER6, fl=0xABCDE, tc=10 << 2)
        / tcp(9090, 40000, "PA", []),
        2,
    ),
    (
        "IPv6 SYN-ACK: traffic class with ECN kept, flow label intact, MSS clamped",
        "egress",
        L2 / IPv6(src=SITE6, dst=PEER6, tc=0x01, fl=0x12345) / tcp(8443, 40000),
        L2
        / IPv6(src=SITE6, dst=PEER6, tc=(34 << 2) | 1, fl=0x12345)
        / tcp(8443, 40000, options=mss(OPTS, 1200)),
        3,
    ),
    (
        "802.1Q tagged",
        "egress",
        L2 / Dot1Q(vlan=5) / IP(src=SITE4, dst=PEER4) / tcp(8080, 40000, "A", []),
        L2 / Dot1Q(vlan=5) / IP(src=SITE4, dst=PEER4, tos=46 << 2) / tcp(8080, 40000, "A", []),
        1,
    ),
    (
        "IPv4 options before TCP",
        "egress",
        L2 / IP(src=SITE4, dst=PEER4, options=b"\x01\x01\x01\x00") / tcp(8080, 40000),
        L2
        / IP(src=SITE4, dst=PEER4, tos=46 << 2, options=b"\x01\x01\x01\x00")
        / tcp(8080, 40000, options=mss(OPTS, 1200)),
        1,
    ),
    ("another port", "egress", L2 / IP(src=SITE4, dst=PEER4) / tcp(8081, 40000), None, 0),
    ("another address", "egress", L2 / IP(src=PEER4, dst=SITE4) / tcp(8080, 40000), None, 0),
    ("not TCP or UDP", "egress", L2 / IP(src=SITE4, dst=PEER4) / ICMP(), None, 0),
    (
        "truncated TCP header",
        "egress",
        bytes(L2 / IP(src=SITE4, dst=PEER4) / tcp(8080, 40000))[: 14 + 20 + 10],
        None,
        0,
    ),
]


@pytest.fixture(scope="module")
def loaded(module_layout):
    with TcLayer.load(TcFeatures(), module_layout) as tc:
        tc.set_sites(SITES)
        yield tc


@pytest.mark.parametrize(
    ("desc", "direction", "packet", "expected", "site"), CASES, ids=[c[0] for c in CASES]
)
def test_rewrite(loaded, desc, direction, packet, expected, site):
    data = bytes(packet)
    fd = loaded.egress_fd if direction == "egress" else loaded.ingress_fd
    before = loaded.site_counter(site) if site else None
    run = libbpf.prog_test_run(fd, data)
    assert run.retval == TC_ACT_OK
    want = data if expected is None else bytes(expected)
    assert run.data_out.hex() == want.hex(), desc
    if site:
        after = loaded.site_counter(site)
        moved = (after.out_packets - before.out_packets, after.in_packets - before.in_packets)
        assert moved == ((1, 0) if direction == "egress" else (0, 1))
        grew = after.out_bytes + after.in_bytes - before.out_bytes - before.in_bytes
        assert grew == len(data)


def test_sites_replace_and_validate(loaded):
    with pytest.raises(ValueError, match="site id 0 outside"):
        loaded.set_sites([Site(0, SITE4, 80, None, None)])
    loaded.set_sites([Site(5, "", 80, 8, None)])
    try:
        # A site without an address is keyed for both families; the old sites are gone.
        assert len(loaded.maps["zs_sites"].keys()) == 2
        data = bytes(L2 / IP(src=SITE4, dst=PEER4) / tcp(8080, 40000, "A", []))
        assert libbpf.prog_test_run(loaded.egress_fd, data).data_out == data
    finally:
        loaded.set_sites(SITES)


def test_features_follow_the_plan(layout):
    with TcLayer.load(TcFeatures(dscp=False, mss=True), layout) as tc:
        with pytest.raises(ValueError, match="DSCP marking is not compiled in"):
            tc.set_sites([Site(1, SITE4, 8080, 46, None)])
        tc.set_sites([Site(1, SITE4, 8080, None, 1200)])
        data = bytes(L2 / IP(src=SITE4, dst=PEER4, tos=8) / tcp(8080, 40000))
        out = libbpf.prog_test_run(tc.egress_fd, data).data_out
        want = L2 / IP(src=SITE4, dst=PEER4, tos=8) / tcp(8080, 40000, options=mss(OPTS, 1200))
        assert out == bytes(want)
