"""Edge layers end to end: a Caddyfile is adapted and planned, the plan's programs
are loaded and attached in a scratch hub namespace, and real traffic from client and
attacker namespaces meets them. A plain Python server stands in for the engine."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from scapy.config import conf
from scapy.layers.inet import IP, TCP
from scapy.sendrecv import sniff

from tests.netns.conftest import http_get, http_server
from zeroserve.adapt import adapt_caddyfile
from zeroserve.datapath import attach
from zeroserve.datapath.sock import SockLayer
from zeroserve.datapath.tc import TcFeatures, TcLayer
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan import Layer, build_plan, parse_appliance_config

pytestmark = pytest.mark.netns

DENY = b"""\
:8080 {
\t@blocked remote_ip 198.18.2.0/24
\tabort @blocked
\trespond "ok"
}

:9090 {
\trespond "open"
}
"""


def plan_of(caddyfile: bytes, appliance: dict | None = None):
    config = adapt_caddyfile(caddyfile).config
    return build_plan(config, parse_appliance_config(appliance) if appliance else None)


def test_xdp_deny_from_a_plan(layout, star):
    plan = plan_of(DENY)
    assert [p.layer for p in plan.placements if p.what.startswith("abort")] == [Layer.XDP]
    (rule,) = plan.xdp.deny
    client, attacker = star.spokes["client"], star.spokes["attacker"]
    with (
        http_server(star.hub, 8080, 9090),
        XdpLayer.load(XdpFeatures.for_plan(plan.xdp), layout) as xdp,
    ):
        xdp.apply(plan.xdp)
        for spoke in (client, attacker):
            attach.attach_xdp(spoke.hub_index, xdp.prog_fd, attach.XdpMode.NATIVE, ns=star.hub)
        assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "port 8080\n"
        assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/") is None
        dropped = xdp.rule_counter(rule.id)
        assert dropped.packets >= 1  # the SYN, and its retransmissions
        assert xdp.verdict_counters()["deny"].packets == dropped.packets
        # The rule guards its listener only: the attacker still reaches :9090.
        assert http_get(attacker.ns, f"http://{attacker.hub_addr}:9090/") == "port 9090\n"
        assert xdp.rule_counter(rule.id) == dropped
        # Rules change in the maps, not the program.
        xdp.set_deny({})
        assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/") == "port 8080\n"


def test_unserved_ports_from_the_appliance_config(layout, star):
    plan = plan_of(DENY, {"drop_unserved_ports": True, "allow_ports": [22]})
    assert plan.xdp.open_ports == (22, 8080, 9090)
    client = star.spokes["client"]
    with (
        http_server(star.hub, 8080, 7070),
        XdpLayer.load(XdpFeatures.for_plan(plan.xdp), layout) as xdp,
    ):
        xdp.apply(plan.xdp)
        attach.attach_xdp(client.hub_index, xdp.prog_fd, attach.XdpMode.GENERIC, ns=star.hub)
        assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "port 8080\n"
        # 7070 has a socket, but no site serves it: the SYN never reaches it.
        assert http_get(client.ns, f"http://{client.hub_addr}:7070/") is None
        assert xdp.verdict_counters()["unserved"].packets >= 1


def test_dscp_and_mss_on_egress_seen_by_the_client(layout, star):
    plan = plan_of(DENY, {"mss_clamp": 1200, "sites": {":8080": {"dscp": "AF41"}}})
    by_port = {s.port: s for s in plan.tc.sites}
    assert (by_port[8080].dscp, by_port[8080].mss, by_port[9090].dscp) == (34, 1200, None)
    client = star.spokes["client"]
    with (
        http_server(star.hub, 8080, 9090),
        TcLayer.load(TcFeatures.for_plan(plan.tc), layout) as tc,
    ):
        tc.apply(plan.tc)
        attach.attach_tc(client.hub_index, tc.ingress_fd, "ingress", "zs-tc-in", star.hub)
        attach.attach_tc(client.hub_index, tc.egress_fd, "egress", "zs-tc-out", star.hub)
        with attach.in_netns(client.ns):
            listen = conf.L2listen(iface="zs0", filter="tcp and src host " + client.hub_addr)
        try:
            assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "port 8080\n"
            assert http_get(client.ns, f"http://{client.hub_addr}:9090/") == "port 9090\n"
            packets = sniff(opened_socket=listen, timeout=1)
        finally:
            listen.close()
        seen = [(p[TCP].sport, p[IP].tos, p[TCP]) for p in packets if TCP in p]
        from_site = [(tos, t) for sport, tos, t in seen if sport == 8080]
        others = [tos for sport, tos, _ in seen if sport == 9090]
        assert from_site and others
        assert {tos >> 2 for tos, _ in from_site} == {34}
        assert {tos >> 2 for tos in others} == {0}
        (synack,) = [t for _, t in from_site if t.flags == "SA"]
        assert dict(synack.options)["MSS"] == 1200
        counted = tc.site_counter(by_port[8080].id)
        assert counted.out_packets == len(from_site)
        assert counted.in_packets >= 3  # SYN, ACK, request


def test_sk_lookup_serves_an_address_on_no_interface(layout, star):
    plan = plan_of(b":8080 {\n\tbind 198.19.5.5\n\trespond ok\n}\n")
    (listener,) = plan.sock.dispatch
    assert (listener.address, listener.port) == ("198.19.5.5", 8080)
    client = star.spokes["client"]
    attach.add_route(star.hub, "198.19.5.0/24", local=True)
    with attach.in_netns(star.hub):
        # The stand-in engine listens on some other address and port entirely.
        server = socket.create_server((star.spokes["client"].hub_addr, 7777))
    served = []

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            served.append(conn.getsockname())
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nserved\n"
            )
            conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    url = f"http://{listener.address}:{listener.port}/"
    try:
        with SockLayer.load(layout=layout) as sock:
            assert http_get(client.ns, url) is None  # refused: nothing listens there
            link = attach.attach_sk_lookup(sock.prog_fd, star.hub)
            try:
                sock.set_dispatch({(listener.address, listener.port): server.fileno()})
                assert http_get(client.ns, url) == "served\n"
                assert served == [(listener.address, listener.port)]
                # Another address of the local range has no dispatch entry.
                assert http_get(client.ns, f"http://198.19.5.6:{listener.port}/") is None
                sock.set_dispatch({})
                assert http_get(client.ns, url) is None
            finally:
                os.close(link)
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        server.close()
        thread.join(timeout=5)
