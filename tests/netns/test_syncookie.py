"""XDP SYN cookies end to end: `zeroserve run` with an appliance config that turns
them on serves a Caddyfile in the hub namespace; a real client's handshakes are
answered by XDP and completed by the kernel, and a spoofed SYN flood gets SYN-ACKs
from XDP while the engine's accept queue stays empty.

The threshold is 1 SYN per second per port: with the CPUs' shares rounded up,
each CPU passes its first SYN of every second to the stack and answers the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from scapy.arch import get_if_hwaddr
from scapy.config import conf
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.sendrecv import sniff

from tests.netns.test_agent import admin, running, status
from zeroserve.datapath import attach, libbpf, syncookie

pytestmark = pytest.mark.netns

PORT = 8080
CADDYFILE = f"""\
{{
\tadmin 127.0.0.1:2999
}}

:{PORT} {{
\trespond "hello"
}}
"""
CONNECTIONS = 6
FLOOD, BURST = 400, 50
# The SYN-ACK XDP builds offers ten segments of the cookie's MSS (1460 here);
# the stack's own offer a window of its buffer (64 KiB or so).
XDP_WINDOW = 14600
# The client's IPv6 address on its link to the hub, and the hub's (the star is IPv4).
CLIENT6, HUB6 = "2001:db8:1::2", "2001:db8:1::1"

# One connection after another from one CPU, each a GET read to the end; prints
# the bodies as a JSON list (None for a failed connection).
CLIENT = """
import json, socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bodies = []
for _ in range(count):
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        bodies.append(data.decode(errors="replace"))
    except OSError as err:
        bodies.append(None)
print(json.dumps(bodies))
"""


# Opens connections one after another from one CPU and holds them open until
# stdin closes.
HOLD = """
import socket, sys
held = [socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        for _ in range(int(sys.argv[3]))]
print("open", flush=True)
sys.stdin.read()
"""


def sysctl(ns: str, name: str) -> str:
    cmd = ["ip", "netns", "exec", ns, "sysctl", "-n", name]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def cookies_sent(ns: str, interface: str) -> int:
    rows = [c for c in status(ns)["syncookies"] if c["interface"] == interface]
    return rows[0]["packets"] if rows else 0


def hub_side(star: attach.Star, spoke: attach.Spoke) -> str:
    """The name of the hub's end of spoke's veth pair."""
    names = {index: name for name, index in attach.all_interfaces(star.hub).items()}
    return names[spoke.hub_index]


@pytest.fixture(scope="module")
def topology() -> Iterator[attach.Star]:
    """The star, with an XDP program on each spoke's end: a veth takes the frames its
    peer sends back with XDP_TX only then (a NIC needs nothing of the kind)."""
    with attach.scratch_star(["client", "attacker"], prefix="zs-sc") as star:
        fd = libbpf.xdp_pass_program()
        try:
            for spoke in star.spokes.values():
                attach.attach_xdp(spoke.index, fd, attach.XdpMode.NATIVE, ns=spoke.ns)
            client = star.spokes["client"]
            for ns, interface, address in (
                (star.hub, hub_side(star, client), HUB6),
                (client.ns, "zs0", CLIENT6),
            ):
                cmd = ["ip", "-n", ns, "addr", "add", f"{address}/64", "dev", interface, "nodad"]
                subprocess.run(cmd, check=True)
            yield star
        finally:
            os.close(fd)


@pytest.fixture(scope="module")
def agent(topology, zeroserve_bin, tmp_path_factory) -> Iterator[None]:
    before = {name: sysctl(topology.hub, name) for name in SYSCTLS}
    folder = tmp_path_factory.mktemp("syncookie")
    (folder / "Caddyfile").write_text(CADDYFILE)
    (folder / "appliance.toml").write_text("syn_cookies = { threshold = 1 }\n")
    with running(
        topology.hub,
        zeroserve_bin,
        folder / "Caddyfile",
        ["--appliance-config", str(folder / "appliance.toml")],
    ):
        yield
    # The agent put the namespace's settings back as it stopped.
    assert {name: sysctl(topology.hub, name) for name in SYSCTLS} == before


SYSCTLS = ("net.ipv4.tcp_syncookies", "net.ipv4.tcp_timestamps")


def test_the_stack_takes_cookie_acks_while_on(topology, agent):
    assert [sysctl(topology.hub, name) for name in SYSCTLS] == ["2", "2"]
    (row,) = [r for r in status(topology.hub)["rules"] if r["rule"] == "syn_cookies"]
    assert row["layer"] == "xdp"


@pytest.mark.parametrize(
    ("family", "window"),
    # Ten segments of the cookie's MSS: IPv6's table holds 1440 where IPv4's has 1460.
    [(4, XDP_WINDOW), (6, 14400)],
    ids=["ipv4", "ipv6"],
)
def test_client_handshakes_through_xdp_synacks(topology, agent, family, window):
    client = topology.spokes["client"]
    hub_if = hub_side(topology, client)
    before = cookies_sent(topology.hub, hub_if)
    with attach.in_netns(client.ns):
        wire = conf.L2listen(iface="zs0", filter=f"tcp and port {PORT}")
    try:
        cmd = ["ip", "netns", "exec", client.ns, "taskset", "-c", "0", sys.executable, "-c"]
        cmd += [CLIENT, client.hub_addr if family == 4 else HUB6, str(PORT), str(CONNECTIONS)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        packets = [p for p in sniff(opened_socket=wire, timeout=0.5) if TCP in p]
    finally:
        wire.close()
    bodies = json.loads(done.stdout)
    assert len(bodies) == CONNECTIONS
    assert all(b is not None and b.startswith("HTTP/1.1 200") for b in bodies), bodies
    assert all(b.endswith("\r\n\r\nhello") for b in bodies)
    syns = [p for p in packets if p[TCP].flags == "S"]
    synacks = [p for p in packets if p[TCP].flags == "SA"]
    # Every connection took one SYN and one SYN-ACK: none was lost or retried.
    assert len(syns) == len(synacks) == CONNECTIONS
    from_xdp = [p for p in synacks if p[TCP].window == window]
    assert len(from_xdp) >= CONNECTIONS - 2  # one per second may go to the stack
    assert cookies_sent(topology.hub, hub_if) - before == len(from_xdp)
    # The options the SYN-ACK kept in its timestamp came back to the connection.
    assert all("WScale" in dict(p[TCP].options) for p in from_xdp)


def test_connections_keep_the_options_the_cookie_carried(topology, agent):
    """The stack read window scaling and timestamps back from the ACK's echo, and
    scales its window as the SYN-ACK XDP sent said it would."""
    client = topology.spokes["client"]
    hub_if = hub_side(topology, client)
    before = cookies_sent(topology.hub, hub_if)
    cmd = ["ip", "netns", "exec", client.ns, "taskset", "-c", "0", sys.executable, "-c", HOLD]
    cmd += [client.hub_addr, str(PORT), str(CONNECTIONS)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        ss = ["ip", "netns", "exec", topology.hub, "ss", "-Htin", "state", "established"]
        ss += [f"sport = :{PORT}"]
        shown = subprocess.run(ss, capture_output=True, text=True, check=True).stdout
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert cookies_sent(topology.hub, hub_if) - before >= CONNECTIONS - 2
    infos = [line for line in shown.splitlines() if "wscale:" in line]
    assert len(infos) == CONNECTIONS, shown
    # Linux picks its window scale the same way for both ends of a connection.
    with attach.in_netns(client.ns):
        theirs = syncookie.synack_settings().wscale
    with attach.in_netns(topology.hub):
        ours = syncookie.synack_settings().wscale
    for info in infos:
        assert f" wscale:{theirs},{ours} " in f" {info} ", info
        # 1460 less the 12 bytes of a timestamp option on every segment
        assert " mss:1448 " in f" {info} ", info


def test_spoofed_flood_gets_synacks_and_no_connection(topology, agent):
    attacker = topology.spokes["attacker"]
    hub_if = hub_side(topology, attacker)
    before = cookies_sent(topology.hub, hub_if)
    with attach.in_netns(topology.hub):
        hub_mac = get_if_hwaddr(hub_if)
    with attach.in_netns(attacker.ns):
        mac = get_if_hwaddr("zs0")
        wire = conf.L2listen(iface="zs0", filter=f"tcp and src port {PORT}")
        out = conf.L2socket(iface="zs0")
    try:
        flood = [
            Ether(src=mac, dst=hub_mac)
            / IP(src=f"198.18.{200 + i // 250}.{1 + i % 250}", dst=attacker.hub_addr)
            / TCP(sport=1024 + i, dport=PORT, seq=i, flags="S", options=[("MSS", 1460)])
            for i in range(FLOOD)
        ]
        # In bursts a veth's queue (256 frames) holds, read as they come.
        replies = []
        for start in range(0, FLOOD, BURST):
            for packet in flood[start : start + BURST]:
                out.send(packet)
            replies += [p for p in sniff(opened_socket=wire, timeout=0.05) if TCP in p]
        replies += [p for p in sniff(opened_socket=wire, timeout=0.5) if TCP in p]
    finally:
        wire.close()
        out.close()
    synacks = [p for p in replies if p[TCP].flags == "SA"]
    # The first SYN of a second, per CPU, is the stack's, whose SYN-ACK has no route
    # back to a spoofed source; every other SYN was answered by XDP.
    assert FLOOD - 4 <= len(synacks) <= FLOOD
    assert all(p[TCP].window == XDP_WINDOW for p in synacks)
    assert {p[IP].dst for p in synacks} <= {p[IP].src for p in flood}
    assert cookies_sent(topology.hub, hub_if) - before == len(synacks)
    # No half-open connection and nothing waiting for the engine to accept.
    cmd = ["ip", "netns", "exec", topology.hub, "ss", "-Htn", "state", "syn-recv"]
    assert subprocess.run(cmd, capture_output=True, text=True, check=True).stdout == ""
    cmd = ["ip", "netns", "exec", topology.hub, "ss", "-Hltn", f"sport = :{PORT}"]
    listeners = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert listeners and all(line.split()[1] == "0" for line in listeners.splitlines())


def test_status_and_metrics_show_the_cookies(topology, agent, zeroserve_bin):
    hub_if = hub_side(topology, topology.spokes["attacker"])
    sent = cookies_sent(topology.hub, hub_if)
    assert sent >= FLOOD - 4
    metrics = admin(topology.hub, "GET", "/metrics").decode()
    line = f'zeroserve_xdp_syncookie_packets_total{{interface="{hub_if}"}} {sent}'
    assert line in metrics.splitlines()
    cmd = ["ip", "netns", "exec", topology.hub, str(zeroserve_bin), "status"]
    cmd += ["--address", "127.0.0.1:2999"]
    shown = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    assert f"{hub_if} {sent}" in shown
