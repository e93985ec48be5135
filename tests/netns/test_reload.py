"""Whole plans swapped on live interfaces: each reload provisions aside and then
replaces every hook, a failed swap rolls back, and traffic never meets a gap."""

from __future__ import annotations

import threading

import pytest

from tests.netns.conftest import http_get, http_server
from zeroserve.adapt import adapt_caddyfile
from zeroserve.datapath import attach
from zeroserve.datapath.edge import Edge
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan import build_plan, parse_appliance_config

pytestmark = pytest.mark.netns

DENY = b":8080 {\n\t@blocked remote_ip 198.18.2.0/24\n\tabort @blocked\n\trespond ok\n}\n"
OPEN = b":8080 {\n\trespond ok\n}\n"


def plan_of(caddyfile: bytes, **appliance):
    appliance = {"interfaces": ["zsh1", "zsh2"]} | appliance
    return build_plan(adapt_caddyfile(caddyfile).config, parse_appliance_config(appliance))


def attached(star, index):
    return attach.xdp_prog_id(index, star.hub)


def test_reload_swaps_every_hook_and_rules_survive(layout, star):
    client, attacker = star.spokes["client"], star.spokes["attacker"]
    url = f"http://{attacker.hub_addr}:8080/"
    edge = Edge(layout, star.hub)
    with http_server(star.hub, 8080):
        try:
            edge.apply(plan_of(DENY, sites={":8080": {"dscp": 8}}))
            first = edge.current.xdp.prog_id
            assert attached(star, client.hub_index) == attached(star, attacker.hub_index) == first
            names = attach.tc_filter_names(client.hub_index, "egress", star.hub)
            assert names == ["zeroserve-out"]
            assert http_get(attacker.ns, url) is None
            dropped = edge.current.xdp.rule_counter(1).packets
            assert dropped >= 1

            edge.apply(plan_of(OPEN, drop_unserved_ports=True))
            second = edge.current.xdp.prog_id
            assert second != first
            assert attached(star, client.hub_index) == attached(star, attacker.hub_index) == second
            # The plan has no TC work left: its filters are gone.
            assert attach.tc_filter_names(client.hub_index, "egress", star.hub) == []
            assert http_get(attacker.ns, url) == "port 8080\n"
            # Counters live in pinned maps, so they outlive the program that counted.
            assert edge.current.xdp.rule_counter(1).packets == dropped
        finally:
            edge.detach()
    assert attached(star, client.hub_index) == 0


def test_failed_swap_rolls_back(layout, star):
    client, attacker = star.spokes["client"], star.spokes["attacker"]
    edge = Edge(layout, star.hub)
    try:
        edge.apply(plan_of(DENY))
        running = edge.current.xdp.prog_id
        # Someone else's program takes the second interface: our replace must fail there.
        with XdpLayer.load(XdpFeatures(deny_v4=False, deny_v6=False), layout) as intruder:
            attach.attach_xdp(
                attacker.hub_index,
                intruder.prog_fd,
                attach.XdpMode.NATIVE,
                edge.current.xdp.prog_fd,
                ns=star.hub,
            )
            with pytest.raises(attach.AttachError, match="XDP native attach"):
                edge.apply(plan_of(DENY, drop_unserved_ports=True))
            # The first interface was switched back; the plan in force is the old one.
            assert attached(star, client.hub_index) == running
            assert edge.current.xdp.prog_id == running
            attach.detach_xdp(attacker.hub_index, ns=star.hub)
    finally:
        edge.detach()


def test_no_gap_while_reloading(layout, star):
    client = star.spokes["client"]
    url = f"http://{client.hub_addr}:8080/"
    edge = Edge(layout, star.hub)
    answers: list[str | None] = []
    done = threading.Event()

    def fetch() -> None:
        while not done.is_set():
            answers.append(http_get(client.ns, url, timeout=2.0))

    with http_server(star.hub, 8080):
        try:
            edge.apply(plan_of(DENY))
            worker = threading.Thread(target=fetch)
            worker.start()
            try:
                for caddyfile in (OPEN, DENY, OPEN):
                    edge.apply(plan_of(caddyfile, drop_unserved_ports=True))
            finally:
                done.set()
                worker.join()
        finally:
            edge.detach()
    assert len(answers) >= 3
    assert answers == ["port 8080\n"] * len(answers)
