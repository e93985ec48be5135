"""The real agent and engine with their edge layers: `zeroserve run` serves a
Caddyfile in the hub namespace and attaches to every up interface there; clients,
an attacker and a rate-limited source reach it over their own veth pairs.

`ip netns exec` gives each agent its own mount namespace, so its bpffs (and pins)
are its own and the host's /sys/fs/bpf/zeroserve is never touched.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from scapy.config import conf
from scapy.layers.inet import TCP
from scapy.sendrecv import sniff

from tests.netns.conftest import http_get
from zeroserve.datapath import attach

pytestmark = pytest.mark.netns

ADMIN_PORT = 2999
ANYIP = "198.19.5.5"  # routed to the hub as local, on none of its interfaces
RATE_EVENTS, RATE_WINDOW_S = 10, 1
# One site whose deny rule puts an XDP program in front of it.
DENYING_SITE = f"""\
{{
\tadmin 127.0.0.1:{ADMIN_PORT}
}}

:8080 {{
\t@blocked remote_ip 198.18.2.0/24
\tabort @blocked
\trespond "ok"
}}
"""
CADDYFILE = f"""\
{{
\tadmin 127.0.0.1:{ADMIN_PORT}
\torder rate_limit before respond
}}

:8080 {{
\t@blocked remote_ip 198.18.2.0/24
\tabort @blocked
\trespond "ok"
}}

:8081 {{
\trate_limit {{
\t\tzone per_host {{
\t\t\tkey {{remote_host}}
\t\t\tevents {RATE_EVENTS}
\t\t\twindow {RATE_WINDOW_S}s
\t\t}}
\t}}
\trespond "limited"
}}

:8082 {{
\tbind {ANYIP}
\trespond "anyip"
}}
"""

# Opens a new connection per request as fast as the limit lets it, for a while,
# and prints how many requests got an answer.
HAMMER = """
import socket, sys, threading, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + seconds
done = []
def loop():
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2) as s:
                s.settimeout(2)
                s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
                if s.recv(64).startswith(b"HTTP/1.1 200") and time.monotonic() < end:
                    done.append(1)
        except OSError:
            pass
threads = [threading.Thread(target=loop) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(done))
"""


@pytest.fixture(scope="module")
def topology() -> Iterator[attach.Star]:
    with attach.scratch_star(["client", "attacker", "limited"], prefix="zs-ag") as star:
        attach.add_route(star.hub, f"{ANYIP}/32", local=True)
        yield star


@pytest.fixture(scope="module")
def caddyfile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("agent") / "Caddyfile"
    path.write_text(CADDYFILE)
    return path


def admin(ns: str, method: str, path: str, body: bytes = b"", ctype: str = "") -> bytes:
    """One admin request from inside ns (its loopback is the agent's)."""
    with attach.in_netns(ns):
        conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=30)
        conn.connect()
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, data
    return data


def status(ns: str) -> dict:
    return json.loads(admin(ns, "GET", "/zeroserve/status"))["edge"]


def start_agent(
    ns: str,
    zeroserve_bin: Path,
    caddyfile: Path,
    extra: Sequence[str] = (),
    enter: Sequence[str] | None = None,
) -> subprocess.Popen:
    """The agent in ns, entered with `ip netns exec` unless enter gives another prefix
    (one that keeps a mount namespace, and so a bpffs, across agents)."""
    prefix = ["ip", "netns", "exec", ns] if enter is None else list(enter)
    cmd = [*prefix, str(zeroserve_bin), "run", "-c", str(caddyfile)]
    cmd += ["--workers", "2", *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"zeroserve run exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
        # The admin endpoint opens before the edge commits (as Caddy's opens before the
        # sites): the agent is up once the edge names the interfaces it attached to.
        try:
            if status(ns)["interfaces"]:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("zeroserve run did not attach its edge within 60 s")


@contextmanager
def running(
    ns: str,
    zeroserve_bin: Path,
    caddyfile: Path,
    extra: Sequence[str] = (),
    enter: Sequence[str] | None = None,
) -> Iterator[subprocess.Popen]:
    proc = start_agent(ns, zeroserve_bin, caddyfile, extra, enter)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        proc.stderr.close()


@pytest.fixture(scope="module")
def agent(topology, zeroserve_bin, caddyfile) -> Iterator[subprocess.Popen]:
    with running(topology.hub, zeroserve_bin, caddyfile) as proc:
        yield proc


def zeroserve_xdp(star: attach.Star) -> dict[str, int]:
    return {s.name: attach.xdp_prog_id(s.hub_index, star.hub) for s in star.spokes.values()}


def test_every_up_interface_gets_the_edge(topology, agent):
    edge = status(topology.hub)
    assert sorted(edge["interfaces"]) == ["zsh1", "zsh2", "zsh3"]
    ids = set(zeroserve_xdp(topology).values())
    assert ids == {edge["programs"]["xdp"]}
    assert edge["programs"]["sk_lookup"]


def test_denied_source_never_reaches_the_stack(topology, agent):
    client, attacker = topology.spokes["client"], topology.spokes["attacker"]
    response = http_get(client.ns, f"http://{client.hub_addr}:8080/")
    assert response == "ok"
    (rule,) = [r for r in status(topology.hub)["rules"] if r["what"].startswith("abort")]
    assert rule["layer"] == "xdp" and rule["line"].endswith("Caddyfile:8")
    before = rule["dropped"]["packets"]
    with attach.in_netns(topology.hub):
        hub_side = conf.L2listen(iface="zsh2", filter=f"tcp and src host {attacker.addr}")
    with attach.in_netns(attacker.ns):
        wire = conf.L2listen(iface="zs0", filter=f"tcp and dst port 8080 and src {attacker.addr}")
    try:
        assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/", timeout=2.5) is None
        sent = [p for p in sniff(opened_socket=wire, timeout=0.5) if TCP in p]
        seen = [p for p in sniff(opened_socket=hub_side, timeout=0.5) if TCP in p]
    finally:
        hub_side.close()
        wire.close()
    assert sent, "the attacker's SYNs left its interface"
    assert not seen, "nothing of the attacker's reached the hub's stack"
    edge = status(topology.hub)
    (rule,) = [r for r in edge["rules"] if r["what"].startswith("abort")]
    assert rule["dropped"]["packets"] - before == len(sent)
    drops = [d for d in edge["drops"] if d["source"] == attacker.addr]
    assert drops and drops[0]["rule"] == rule["id"] and drops[0]["reason"] == "deny"
    assert time.time() - drops[0]["last"] < 30
    # The rule guards its own site only.
    assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8081/") == "limited"


def test_status_verb_shows_layers_counters_and_drops(topology, agent, zeroserve_bin):
    attacker = topology.spokes["attacker"]
    assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/", timeout=0.5) is None
    cmd = [str(zeroserve_bin), "status", "--address", f"127.0.0.1:{ADMIN_PORT}"]
    out = subprocess.run(
        ["ip", "netns", "exec", topology.hub, *cmd],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "edge layers: xdp (native, prog " in out and "sk_lookup" in out
    abort = next(ln for ln in out.splitlines() if "abort @ remote_ip 198.18.2.0/24" in ln)
    layer, packets, unit = abort.split()[-6:-3]
    assert (layer, unit) == ("xdp", "pkts") and int(packets) >= 1
    drop = next(ln for ln in out.splitlines() if ln.startswith(attacker.addr))
    assert drop.split()[1:3] == ["deny", "1"]


def test_metrics_name_the_rules(topology, agent):
    text = admin(topology.hub, "GET", "/metrics").decode()
    (rule,) = [r for r in status(topology.hub)["rules"] if r["what"].startswith("abort")]
    line = next(ln for ln in text.splitlines() if ln.startswith("zeroserve_xdp_dropped_packets"))
    assert f'rule="{rule["id"]}"' in line
    assert "# TYPE zeroserve_xdp_dropped_packets_total counter" in text


def test_rate_limited_source_is_held_to_its_rate(topology, agent):
    limited = topology.spokes["limited"]
    seconds = 5.0
    cmd = ["ip", "netns", "exec", limited.ns, sys.executable, "-c", HAMMER]
    out = subprocess.run(
        [*cmd, limited.hub_addr, "8081", str(seconds)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    served = int(out.stdout)
    # A full bucket, then one connection per window / events.
    expected = RATE_EVENTS + seconds * RATE_EVENTS / RATE_WINDOW_S
    assert abs(served - expected) <= 0.1 * expected, (served, expected)
    (rule,) = [r for r in status(topology.hub)["rules"] if r["what"] == "rate_limit"]
    assert rule["layer"] == "xdp" and rule["dropped"]["packets"] > 0


def test_address_on_no_interface_is_served_through_sk_lookup(topology, agent):
    client = topology.spokes["client"]
    with attach.in_netns(topology.hub):
        local = subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True).stdout
    assert ANYIP not in local
    assert f"{ANYIP}:8082" in status(topology.hub)["dispatch"]
    assert http_get(client.ns, f"http://{ANYIP}:8082/") == "anyip"


def test_map_only_reload_and_rejected_config(topology, agent):
    client, attacker = topology.spokes["client"], topology.spokes["attacker"]
    moved = CADDYFILE.replace("198.18.2.0/24", "198.18.1.0/24")
    admin(topology.hub, "POST", "/load", moved.encode(), "text/caddyfile")
    edge = status(topology.hub)
    assert edge["last_reload"]["kind"] == "maps"
    assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/") == "ok"
    assert http_get(client.ns, f"http://{client.hub_addr}:8080/") is None
    # 1100 abort rules overflow the rule table: refused, the old config keeps serving.
    many = "".join(
        f"\t@b{n} remote_ip 10.{n // 250}.{n % 250}.0/24\n\tabort @b{n}\n" for n in range(1100)
    )
    huge = CADDYFILE.replace('\trespond "ok"\n', many + '\trespond "ok"\n')
    with attach.in_netns(topology.hub):
        conn = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=60)
        conn.connect()
    conn.request("POST", "/load", huge.encode(), {"Content-Type": "text/caddyfile"})
    resp = conn.getresponse()
    error = json.loads(resp.read())["error"]
    conn.close()
    assert resp.status == 400 and "Caddyfile:" in error and "rule id" in error
    assert http_get(client.ns, f"http://{client.hub_addr}:8080/") is None
    admin(topology.hub, "POST", "/load", CADDYFILE.encode(), "text/caddyfile")
    assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "ok"


def test_stop_detaches_and_a_killed_agent_is_cleaned_up(star, zeroserve_bin, tmp_path):
    # A topology of its own: the module's agent must not share its interfaces.
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(CADDYFILE.replace(f"\tbind {ANYIP}\n", ""))
    with running(star.hub, zeroserve_bin, caddyfile):
        assert all(zeroserve_xdp(star).values())
        stop = subprocess.run(
            ["ip", "netns", "exec", star.hub, str(zeroserve_bin), "stop"]
            + ["--address", f"127.0.0.1:{ADMIN_PORT}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert stop.returncode == 0, stop.stderr
    assert set(zeroserve_xdp(star).values()) == {0}
    for spoke in star.spokes.values():
        assert not attach.tc_filter_names(spoke.hub_index, "ingress", star.hub)

    crashed = start_agent(star.hub, zeroserve_bin, caddyfile)
    crashed.kill()
    crashed.wait()
    crashed.stderr.close()
    left = zeroserve_xdp(star)
    assert all(left.values()), "kill -9 leaves the programs attached"
    with running(star.hub, zeroserve_bin, caddyfile) as proc:
        edge = status(star.hub)
        assert set(zeroserve_xdp(star).values()) == {edge["programs"]["xdp"]}
        assert not set(left.values()) & {edge["programs"]["xdp"]}
        client = star.spokes["client"]
        assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "ok"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log = proc.stderr.read()
    assert "removed edge program left by a stopped agent" in log
    assert set(zeroserve_xdp(star).values()) == {0}
