"""attach.py against the real kernel, in scratch namespaces: the attach, replace
and detach lifecycle of each hook, and real traffic across a veth meeting the
XDP deny layer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zeroserve.datapath import attach, build, libbpf
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer

SOURCE = """
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
int xdp_a(struct xdp_md *ctx) { return XDP_PASS; }
int xdp_b(struct xdp_md *ctx) { return XDP_PASS; }
int tc_a(struct __sk_buff *skb) { return TC_ACT_OK; }
int tc_b(struct __sk_buff *skb) { return TC_ACT_OK; }
int lookup_a(struct bpf_sk_lookup *ctx) { return SK_PASS; }
"""
XDP, TC = libbpf.PROG_TYPE_XDP, libbpf.PROG_TYPE_SCHED_CLS


@pytest.fixture
def progs(layout):
    specs = [
        build.ProgramSpec("xdp_a", XDP),
        build.ProgramSpec("xdp_b", XDP),
        build.ProgramSpec("tc_a", TC),
        build.ProgramSpec("tc_b", TC),
        build.ProgramSpec("lookup_a", libbpf.PROG_TYPE_SK_LOOKUP, libbpf.ATTACH_SK_LOOKUP),
    ]
    with build.build(SOURCE, specs, layout) as built:
        yield built


@pytest.fixture
def veth():
    before = set(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else set()
    with attach.scratch_veth("zs-test") as pair:
        yield pair
    assert set(os.listdir("/run/netns")) == before, "scratch namespaces must be removed"


def _id(built, name):
    return built.programs[name].info.id


@pytest.mark.parametrize("mode", [attach.XdpMode.NATIVE, attach.XdpMode.GENERIC])
def test_xdp_lifecycle(progs, veth, mode):
    a, b = progs.fd("xdp_a"), progs.fd("xdp_b")
    attach.attach_xdp(veth.inner, a, mode, ns=veth.ns)
    assert attach.xdp_prog_id(veth.inner, veth.ns) == _id(progs, "xdp_a")
    with pytest.raises(attach.AttachError, match="Device or resource busy"):
        attach.attach_xdp(veth.inner, b, mode, ns=veth.ns)  # a first attach never clobbers
    with pytest.raises(attach.AttachError, match="File exists"):
        attach.attach_xdp(veth.inner, b, mode, replace_fd=b, ns=veth.ns)  # stale expectation
    attach.attach_xdp(veth.inner, b, mode, replace_fd=a, ns=veth.ns)
    assert attach.xdp_prog_id(veth.inner, veth.ns) == _id(progs, "xdp_b")
    attach.detach_xdp(veth.inner, mode, ns=veth.ns)
    assert attach.xdp_prog_id(veth.inner, veth.ns) == 0


def test_tc_lifecycle(progs, veth):
    attach.attach_tc(veth.inner, progs.fd("tc_a"), "ingress", "zs-a", veth.ns)
    attach.attach_tc(veth.inner, progs.fd("tc_b"), "ingress", "zs-b", veth.ns)
    assert attach.tc_filter_names(veth.inner, "ingress", veth.ns) == ["zs-b"]
    attach.attach_tc(veth.inner, progs.fd("tc_a"), "egress", "zs-a", veth.ns)
    assert attach.tc_filter_names(veth.inner, "egress", veth.ns) == ["zs-a"]
    attach.detach_tc(veth.inner, veth.ns)
    assert attach.tc_filter_names(veth.inner, "ingress", veth.ns) == []
    with pytest.raises(attach.AttachError, match="remove clsact"):
        attach.detach_tc(veth.inner, veth.ns)


def test_unknown_interface(veth):
    with pytest.raises(attach.AttachError, match=f"no interface 'nope0' in netns {veth.ns}"):
        attach.ifindex("nope0", veth.ns)
    assert attach.ifindex("zs0", veth.ns) == veth.inner


def test_sk_lookup_link(progs, veth):
    link = attach.attach_sk_lookup(progs.fd("lookup_a"), veth.ns)
    try:
        # A second program of the same kind joins the chain rather than failing.
        second = attach.attach_sk_lookup(progs.fd("lookup_a"), veth.ns)
        os.close(second)
    finally:
        os.close(link)


LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8080)); s.listen(16)
print("ready", flush=True)
while True:
    s.accept()[0].close()
"""
CLIENT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], 8080), timeout=float(sys.argv[2])).close()
except OSError:
    sys.exit(1)
"""


def _connects(ns: str, addr: str, timeout: float = 0.5) -> bool:
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, addr, str(timeout)]
    return subprocess.run(cmd, timeout=10, check=False).returncode == 0


def test_traffic_meets_the_deny_layer(layout, veth):
    listener = subprocess.Popen(
        ["ip", "netns", "exec", veth.ns, sys.executable, "-c", LISTENER, veth.inner_addr],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout.readline().strip() == "ready"
        with XdpLayer.load(XdpFeatures(), layout) as xdp:
            attach.attach_xdp(veth.inner, xdp.prog_fd, attach.XdpMode.NATIVE, ns=veth.ns)
            assert _connects(veth.peer_ns, veth.inner_addr)

            xdp.set_deny({9: [f"{veth.outer_addr}/32"]})
            assert not _connects(veth.peer_ns, veth.inner_addr)
            dropped = xdp.rule_counter(9)
            assert dropped.packets >= 1  # the SYN, plus any retransmission

            xdp.set_deny({})
            assert _connects(veth.peer_ns, veth.inner_addr)
            assert xdp.rule_counter(9) == dropped
            assert xdp.verdict_counters()["pass"].packets > 0
            attach.detach_xdp(veth.inner, attach.XdpMode.NATIVE, ns=veth.ns)
    finally:
        listener.kill()
        listener.wait()
