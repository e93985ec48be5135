"""XDP SYN cookies through BPF_PROG_TEST_RUN: past the threshold a SYN comes back
as the SYN-ACK XDP_TX sends, read by scapy; under it, or to a port nobody serves,
the SYN passes untouched.

The test pins itself to one CPU: SYNs are counted per CPU, and test runs execute
on the CPU of the caller."""

from __future__ import annotations

import os
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from zeroserve.datapath import libbpf, syncookie
from zeroserve.datapath.structs import STRUCTS
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan.model import CookiePort, SynCookies, XdpPlan

XDP_PASS, XDP_TX = 2, 3
PORT, UNSERVED = 443, 8443
CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
# The kernel's cookie MSS table: a SYN's MSS is rounded down to one of these.
MSS_TABLE = (536, 1300, 1440, 1460)
LOOPBACK_IFINDEX = 1  # test runs arrive on the namespace's loopback
LINUX_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None)]


def syn(
    *,
    v6: bool = False,
    options: list | None = None,
    flags: str = "S",
    dport: int = PORT,
    vlan: int | None = None,
    src: str = "198.18.1.2",
) -> bytes:
    l2 = Ether(src=CLIENT_MAC, dst=SERVER_MAC)
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    l3 = IPv6(src="2001:db8::2", dst="2001:db8::1") if v6 else IP(src=src, dst="198.18.0.1")
    options = LINUX_OPTIONS + [("WScale", 7)] if options is None else options
    return bytes(l2 / l3 / TCP(sport=40000, dport=dport, seq=1000, flags=flags, options=options))


def checksums_hold(packet: Ether) -> bool:
    """Recomputed by scapy, the checksums equal those XDP wrote."""
    again = packet.copy()
    l3 = again[IP] if IP in again else None
    if l3 is not None:
        del l3.chksum
    del again[TCP].chksum
    again = Ether(bytes(again))
    same_tcp = again[TCP].chksum == packet[TCP].chksum
    return same_tcp and (l3 is None or again[IP].chksum == packet[IP].chksum)


@pytest.fixture(scope="module")
def one_cpu():
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


@pytest.fixture(scope="module")
def loaded(module_layout, one_cpu):
    with XdpLayer.load(
        XdpFeatures(deny_v4=False, deny_v6=False, syncookies=True), module_layout
    ) as xdp:
        yield xdp


def plan(xdp: XdpLayer, per_cpu: int, marks: CookiePort | None = None) -> None:
    """Each CPU passes per_cpu SYNs a second per port; windows start afresh."""
    cpus = os.cpu_count() or 1
    ports = (CookiePort(80), marks or CookiePort(PORT))
    xdp.apply(XdpPlan(syncookies=SynCookies(per_cpu * cpus, ports)))
    windows = xdp.maps["zs_syn_windows"]
    for slot in range(2):
        windows.update(slot.to_bytes(4, "little"), bytes(windows.value_bytes))


def cookie(xdp: XdpLayer, data: bytes, marks: CookiePort | None = None) -> libbpf.TestRun:
    plan(xdp, 1, marks)
    first = libbpf.prog_test_run(xdp.prog_fd, data)
    assert (first.retval, first.data_out) == (XDP_PASS, data), "the first SYN is the stack's"
    return libbpf.prog_test_run(xdp.prog_fd, data)


def test_synack_past_the_threshold(loaded):
    sent = Ether(syn())
    before = loaded.syncookie_counters().get(LOOPBACK_IFINDEX)
    run = cookie(loaded, bytes(sent))
    assert run.retval == XDP_TX
    reply = Ether(run.data_out)
    assert (reply.src, reply.dst) == (SERVER_MAC, CLIENT_MAC)
    assert (reply[IP].src, reply[IP].dst) == (sent[IP].dst, sent[IP].src)
    assert (reply[IP].ttl, reply[IP].flags, reply[IP].len) == (64, "DF", 60)
    tcp = reply[TCP]
    assert (tcp.sport, tcp.dport, tcp.flags) == (PORT, 40000, "SA")
    assert tcp.ack == sent[TCP].seq + 1
    assert checksums_hold(reply)
    options = dict(tcp.options)
    assert options["MSS"] == 1460
    assert "SAckOK" in options
    settings = syncookie.synack_settings()
    assert options["WScale"] == settings.wscale
    tsval, tsecr = options["Timestamp"]
    assert tsecr == 123456
    # cookie_init_timestamp: the client's wscale (7) and SACK in the low six bits,
    # the rest the clock in ms, never ahead of it.
    assert tsval & 0x3F == 7 | 1 << 4
    assert 0 <= (time.monotonic_ns() // 1_000_000 - tsval) % 2**32 < 64 + 1000
    after = loaded.syncookie_counters()[LOOPBACK_IFINDEX]
    packets, size = (before.packets, before.bytes) if before else (0, 0)
    assert (after.packets - packets, after.bytes - size) == (1, len(run.data_out))


def test_cookie_is_the_kernels_and_keeps_the_mss_it_encodes(loaded):
    """Two SYNs alike get one cookie; the MSS is the table entry the cookie holds."""
    data = syn(options=[("MSS", 1400)])
    first = Ether(cookie(loaded, data).data_out)[TCP]
    second = Ether(libbpf.prog_test_run(loaded.prog_fd, data).data_out)[TCP]
    assert first.seq == second.seq
    # No timestamps in the SYN: the options the kernel would keep in them are gone.
    assert first.options == [("MSS", 1300)]
    assert first.window == 1300 * 10
    other = Ether(syn(options=[("MSS", 1400)], src="198.18.1.3"))
    assert Ether(libbpf.prog_test_run(loaded.prog_fd, bytes(other)).data_out)[TCP].seq != first.seq


@pytest.mark.parametrize(
    ("options", "length"), [([], 14 + 20 + 24), (LINUX_OPTIONS + [("EOL", None)] * 8, 14 + 20 + 40)]
)
def test_frame_is_as_long_as_the_synack(loaded, options, length):
    """A bare SYN grows to hold the MSS option; one with more options shrinks."""
    sent = syn(options=options)
    run = cookie(loaded, sent)
    assert run.retval == XDP_TX
    assert len(run.data_out) == length != len(sent)
    reply = Ether(run.data_out)
    assert reply[IP].len == length - 14 and checksums_hold(reply)


@pytest.mark.parametrize("mss", MSS_TABLE)
def test_mss_table(loaded, mss):
    reply = Ether(cookie(loaded, syn(options=[("MSS", mss + 1)])).data_out)
    assert dict(reply[TCP].options)["MSS"] == mss


def test_ipv6_synack(loaded):
    sent = Ether(syn(v6=True))
    run = cookie(loaded, bytes(sent))
    assert run.retval == XDP_TX
    reply = Ether(run.data_out)
    assert (reply[IPv6].src, reply[IPv6].dst) == ("2001:db8::1", "2001:db8::2")
    assert (reply[IPv6].plen, reply[IPv6].hlim) == (40, 64)
    assert (reply[TCP].sport, reply[TCP].dport, reply[TCP].flags) == (PORT, 40000, "SA")
    assert checksums_hold(reply)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_port_clamp_and_dscp(loaded, v6):
    """What TC would mark on the stack's SYN-ACK, which XDP_TX never passes."""
    reply = Ether(cookie(loaded, syn(v6=v6), CookiePort(PORT, mss=1300, dscp=46)).data_out)
    assert dict(reply[TCP].options)["MSS"] == 1300
    assert (reply[IPv6].tc if v6 else reply[IP].tos) == 46 << 2
    assert checksums_hold(reply)
    # A clamp above the cookie's MSS changes nothing.
    reply = Ether(cookie(loaded, syn(v6=v6), CookiePort(PORT, mss=9000)).data_out)
    assert dict(reply[TCP].options)["MSS"] == (1440 if v6 else 1460)


def test_vlan_tag_kept(loaded):
    run = cookie(loaded, syn(vlan=7))
    assert run.retval == XDP_TX
    reply = Ether(run.data_out)
    assert reply[Dot1Q].vlan == 7 and reply[TCP].flags == "SA" and checksums_hold(reply)


@pytest.mark.parametrize("stack_takes_ecn", [True, False])
def test_ecn_setup_is_echoed_when_the_stack_takes_it_up(loaded, stack_takes_ecn):
    """As the stack's own SYN-ACK would, by net.ipv4.tcp_ecn."""
    plan(loaded, 1)
    cfg = loaded.maps["zs_syncookie_cfg"]
    settings = STRUCTS["zs_syncookie_cfg"].from_buffer_copy(cfg.lookup(bytes(4)))
    settings.ecn = stack_takes_ecn
    cfg.update(bytes(4), bytes(settings))
    data = syn(flags="SEC")
    assert libbpf.prog_test_run(loaded.prog_fd, data).retval == XDP_PASS
    tcp = Ether(libbpf.prog_test_run(loaded.prog_fd, data).data_out)[TCP]
    assert tcp.flags == ("SAE" if stack_takes_ecn else "SA")
    assert bool(dict(tcp.options)["Timestamp"][0] & 1 << 5) == stack_takes_ecn


@pytest.mark.parametrize(
    ("desc", "data"),
    [
        ("a port nobody serves", syn(dport=UNSERVED)),
        ("a SYN-ACK", syn(flags="SA")),
        ("an ACK", syn(flags="A", options=[])),
        ("a SYN with RST", syn(flags="SR")),
        ("IPv4 with options", bytes(Ether() / IP(options=b"\x01\x01\x01\x00") / TCP(flags="S"))),
    ],
)
def test_passes_untouched(loaded, desc, data):
    plan(loaded, 1)
    for _ in range(3):
        run = libbpf.prog_test_run(loaded.prog_fd, data)
        assert (run.retval, run.data_out) == (XDP_PASS, data), desc


def test_under_the_threshold_syns_pass_each_interval(loaded):
    data = syn()
    plan(loaded, 3)
    verdicts = [libbpf.prog_test_run(loaded.prog_fd, data).retval for _ in range(5)]
    assert verdicts == [XDP_PASS] * 3 + [XDP_TX] * 2
    # Another port has its own count.
    assert libbpf.prog_test_run(loaded.prog_fd, syn(dport=80)).retval == XDP_PASS
    time.sleep(syncookie.INTERVAL_NS / 1e9)
    verdicts = [libbpf.prog_test_run(loaded.prog_fd, data).retval for _ in range(4)]
    assert verdicts == [XDP_PASS] * 3 + [XDP_TX]


def test_not_compiled_in(layout):
    with XdpLayer.load(XdpFeatures(deny_v4=False, deny_v6=False), layout) as xdp:
        with pytest.raises(ValueError, match="SYN cookies are not compiled in"):
            xdp.apply(XdpPlan(syncookies=SynCookies(1, (CookiePort(PORT),))))
        assert xdp.syncookie_counters() == {}
