"""The agent's edge-layer glue that needs no kernel: the engine's share of a config,
the Caddyfile line a rejection names, listening sockets by address, metrics text."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request

import pytest

from tests.cli.test_run import stop, wait_for
from tests.support import clean_env, free_port
from zeroserve.adapt import adapt_caddyfile
from zeroserve.agent.layers import blame, engine_config, metrics, sockets_by_address
from zeroserve.plan import Layer, LineIndex, build_plan

RATE = """\
\trate_limit {
\t\tzone per_host {
\t\t\tkey {remote_host}
\t\t\tevents 5
\t\t\twindow 1s
\t\t}
\t}
"""


def handlers(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["handler"]] if "handler" in node else []
        return own + [h for v in node.values() for h in handlers(v)]
    if isinstance(node, list):
        return [h for v in node for h in handlers(v)]
    return []


def test_rate_limit_in_xdp_leaves_the_engine_config():
    body = "{\n\torder rate_limit before respond\n}\n:8080 {\n" + RATE + "\trespond ok\n}\n"
    config = adapt_caddyfile(body.encode()).config
    plan = build_plan(config)
    assert handlers(engine_config(config, plan)) == ["static_response"]
    assert "rate_limit" in handlers(config), "the caller's config is left alone"


def test_rate_limit_nested_in_a_route_block():
    body = ":8080 {\n\troute {\n" + RATE.replace("\t", "\t\t") + "\t\trespond ok\n\t}\n}\n"
    config = adapt_caddyfile(body.encode()).config
    assert handlers(engine_config(config, build_plan(config))) == ["subroute", "static_response"]


def test_rate_limit_the_engine_must_run_stays():
    keyed = RATE.replace("{remote_host}", "{http.request.header.X-Key}")
    body = "{\n\torder rate_limit before respond\n}\n:8080 {\n" + keyed + "\trespond ok\n}\n"
    config = adapt_caddyfile(body.encode()).config
    assert engine_config(config, build_plan(config)) is config


def test_abort_in_xdp_stays_in_the_engine_too():
    body = b":8080 {\n\t@b remote_ip 10.0.0.0/8\n\tabort @b\n\trespond ok\n}\n"
    config = adapt_caddyfile(body).config
    plan = build_plan(config)
    assert [p.layer for p in plan.placements if p.what.startswith("abort")] == [Layer.XDP]
    assert engine_config(config, plan) is config


def test_a_rejected_layer_names_its_first_rule_line():
    body = b":8080 {\n\trespond ok\n\t@b remote_ip 10.0.0.0/8\n\tabort @b\n}\n"
    config = adapt_caddyfile(body).config
    plan = build_plan(config, lines=LineIndex("Caddyfile", body))
    assert blame(plan, Layer.XDP) == "Caddyfile:4: abort @ remote_ip 10.0.0.0/8"
    assert blame(plan, Layer.SOCK) == "listen :8080"


def test_sockets_by_address_one_per_listen_address():
    socks = []
    try:
        for host in ("127.0.0.1", "127.0.0.1", "0.0.0.0"):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((host, socks[0].getsockname()[1] if socks else 0))
            s.listen()
            socks.append(s)
        port = socks[0].getsockname()[1]
        found = sockets_by_address([s.fileno() for s in socks])
        assert found == {("127.0.0.1", port): socks[0].fileno(), ("", port): socks[2].fileno()}
        assert all(s.fileno() >= 0 for s in socks), "the fds stay open: their owner closes them"
    finally:
        for s in socks:
            s.close()


def test_metrics_text():
    status = {
        "rules": [
            {"id": 1, "line": 'Caddyfile:3 "x"', "dropped": {"packets": 7, "bytes": 420}},
            {"rule": "srv0.routes[1]", "layer": "engine"},
        ],
        "verdicts": {"pass": {"packets": 9, "bytes": 900}},
        "sites": [],
        "dispatch": [":8080"],
        "reloads": {"maps": 2, "programs": 1},
        "syncookies": [{"interface": "eth0", "packets": 5, "bytes": 370}],
    }
    text = metrics(status)
    assert 'zeroserve_xdp_dropped_packets_total{rule="1",line="Caddyfile:3 \\"x\\""} 7' in text
    assert 'zeroserve_xdp_packets_total{verdict="pass"} 9' in text
    assert "zeroserve_sk_lookup_dispatch_entries 1" in text
    assert 'zeroserve_edge_reloads_total{kind="maps"} 2' in text
    assert 'zeroserve_xdp_syncookie_packets_total{interface="eth0"} 5' in text
    assert 'zeroserve_xdp_syncookie_bytes_total{interface="eth0"} 370' in text
    assert "# TYPE zeroserve_xdp_dropped_packets_total counter" in text
    assert metrics(None) == (
        "# HELP zeroserve_edge_enabled 1 if the BPF edge layers run.\n"
        "# TYPE zeroserve_edge_enabled gauge\nzeroserve_edge_enabled 0\n"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_run_without_root_serves_with_the_edge_off(zeroserve_bin):
    port, admin = free_port(), free_port()
    caddyfile = (
        f"{{\n\tadmin 127.0.0.1:{admin}\n}}\nhttp://:{port} {{\n\tbind 127.0.0.1\n"
        "\t@b remote_ip 10.0.0.0/8\n\tabort @b\n\trespond one\n}\n"
    )
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = subprocess.Popen(
        [*nobody, str(zeroserve_bin), "run", "-c", "-", "--adapter", "caddyfile"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=clean_env() | {"HOME": "/tmp"},
    )
    proc.stdin.write(caddyfile)
    proc.stdin.close()
    try:
        wait_for(f"http://127.0.0.1:{port}/", proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.read() == b"one"
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/zeroserve/status") as resp:
            assert json.loads(resp.read())["edge"] == {"enabled": False}
    finally:
        stop(proc)
    warning = json.loads(proc.stderr.readline())
    assert warning["level"] == "warn"
    assert warning["reason"] == (
        "the XDP, TC and sk_lookup programs need CAP_BPF (creating maps and loading programs)"
        " and CAP_NET_ADMIN (XDP and TC programs, their hooks and the socket map); the XDP and"
        " TC programs need CAP_PERFMON (the verifier refuses packet parsing without it);"
        " effective capabilities: none"
    )
