"""`GET /reverse_proxy/upstreams` on the admin endpoint, against a real `zeroserve run` and
the real Caddy serving the same Caddyfile: the same upstreams, request counts and passive
health check failures."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.agent.test_admin import admin
from tests.cli.test_run import get, wait_for
from tests.support import QuietHandler, free_port, spawn, stop, zeroserve_run_argv

SITE = """{{
\tadmin 127.0.0.1:{admin}
}}

http://:{port} {{
\tbind 127.0.0.1
\treverse_proxy 127.0.0.1:{dead} 127.0.0.1:{live} {{
\t\tlb_policy first
\t\tfail_duration 1m
\t}}
}}
"""


PASSIVE = """{{
\tadmin 127.0.0.1:{admin}
}}

http://:{port} {{
\tbind 127.0.0.1
\treverse_proxy 127.0.0.1:{live} {{
\t\tfail_duration 1m
\t\tmax_fails 10
\t\tunhealthy_status 5xx 503
\t\tunhealthy_latency 150ms
\t}}
}}
"""


class _Named(QuietHandler):
    """`/bad` answers 503, `/slow` answers after 300ms, anything else 200 at once."""

    def do_GET(self) -> None:
        body = b"live"
        if self.path == "/slow":
            time.sleep(0.3)
        self.reply(503 if self.path == "/bad" else 200, body)


@pytest.fixture
def live_upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _argv(name: str, caddy_bin: Path, zeroserve_bin: Path, cfg: Path) -> list[str]:
    if name == "caddy":
        return [str(caddy_bin), "run", "--config", str(cfg), "--adapter", "caddyfile"]
    return zeroserve_run_argv(zeroserve_bin, cfg)


def _serve(cmd: list[str], cfg: Path, site: str, ports: dict) -> subprocess.Popen:
    cfg.write_text(site.format(**ports))
    proc = spawn(cmd)
    wait_for(f"http://127.0.0.1:{ports['admin']}/config/", proc)
    return proc


def _observe(ports: dict, paths: list[str]) -> dict:
    """Proxied requests to `paths`, then what the admin endpoint reports."""
    answers = [get(f"http://127.0.0.1:{ports['port']}{p}") for p in paths]
    status, headers, body = admin(ports, "GET", "/reverse_proxy/upstreams")
    refused, _, refusal = admin(ports, "POST", "/reverse_proxy/upstreams", b"{}")
    return {
        "responses": [(a[0], a[2]) for a in answers],
        "status": status,
        "content_type": headers["Content-Type"],
        "newline": body.endswith(b"\n"),
        "upstreams": json.loads(body),
        "post": (refused, json.loads(refusal)),
    }


def _both(zeroserve_bin, caddy_bin, tmp_path, live: int, site: str, paths: list[str]) -> dict:
    """What Caddy and zeroserve each report after the same requests, upstreams named by
    role (the dead port differs per run)."""
    seen = {}
    for name in ("caddy", "zeroserve"):
        ports = {"port": free_port(), "admin": free_port(), "dead": free_port(), "live": live}
        cfg = tmp_path / f"Caddyfile.{name}"
        cmd = _argv(name, caddy_bin, zeroserve_bin, cfg)
        proc = _serve(cmd, cfg, site, ports)
        try:
            wait_for(f"http://127.0.0.1:{ports['port']}/", proc)
            observed = _observe(ports, paths)
        finally:
            stop(proc)
        roles = {f"127.0.0.1:{ports['dead']}": "dead", f"127.0.0.1:{ports['live']}": "live"}
        for u in observed["upstreams"]:
            u["address"] = roles.get(u["address"], u["address"])
        observed["upstreams"].sort(key=lambda u: u["address"])
        seen[name] = observed
    return seen


def test_upstreams_view_matches_caddy(zeroserve_bin, caddy_bin, tmp_path, live_upstream):
    seen = _both(zeroserve_bin, caddy_bin, tmp_path, live_upstream, SITE, ["/", "/"])
    caddy, ours = seen["caddy"], seen["zeroserve"]
    # Caddy's own view: the dead upstream failed once and is skipped for fail_duration.
    assert caddy["upstreams"] == [
        {"address": "dead", "num_requests": 0, "fails": 1},
        {"address": "live", "num_requests": 0, "fails": 0},
    ]
    assert caddy["responses"][1] == (200, b"live")
    assert ours == caddy


def test_passive_strikes_match_caddy(zeroserve_bin, caddy_bin, tmp_path, live_upstream):
    paths = ["/bad", "/slow", "/"]
    seen = _both(zeroserve_bin, caddy_bin, tmp_path, live_upstream, PASSIVE, paths)
    caddy, ours = seen["caddy"], seen["zeroserve"]
    # 503 matches both 5xx and 503 (two strikes), the slow answer one, the quick 200 none.
    assert caddy["upstreams"] == [{"address": "live", "num_requests": 0, "fails": 3}]
    assert ours == caddy


def test_upstreams_view_lists_nothing_without_proxies(zeroserve_bin, tmp_path):
    ports = {"port": free_port(), "admin": free_port()}
    cfg = tmp_path / "Caddyfile"
    cfg.write_text(
        f"{{\n\tadmin 127.0.0.1:{ports['admin']}\n}}\n\n"
        f"http://:{ports['port']} {{\n\tbind 127.0.0.1\n\trespond ok\n}}\n"
    )
    proc = spawn(zeroserve_run_argv(zeroserve_bin, cfg))
    try:
        wait_for(f"http://127.0.0.1:{ports['port']}/", proc)
        req = urllib.request.Request(f"http://127.0.0.1:{ports['admin']}/reverse_proxy/upstreams")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert (resp.status, resp.read()) == (200, b"[]\n")
    finally:
        stop(proc)


def test_reload_keeps_addresses_and_forgets_old_failures_like_caddy(
    zeroserve_bin, caddy_bin, tmp_path, live_upstream
):
    """A reload keeps the pooled state of the addresses both configs use, and the old
    handler's passive failures are forgotten with it (Caddy's forgetters end with the old
    config's context)."""
    reports = {}
    for name in ("caddy", "zeroserve"):
        ports = {"port": free_port(), "admin": free_port(), "dead": free_port()}
        ports["live"] = live_upstream
        cfg = tmp_path / f"Caddyfile.reload.{name}"
        cmd = _argv(name, caddy_bin, zeroserve_bin, cfg)
        proc = _serve(cmd, cfg, SITE, ports)
        try:
            wait_for(f"http://127.0.0.1:{ports['port']}/", proc)
            before = admin(ports, "GET", "/reverse_proxy/upstreams")[2]
            # The same upstreams, one more directive: a real change, so a real reload.
            changed = SITE.format(**ports).replace(
                "lb_policy first", "lb_policy first\n\t\tlb_retries 1"
            )
            status, _, body = admin(
                ports, "POST", "/load", changed.encode(), {"Content-Type": "text/caddyfile"}
            )
            assert status == 200, body
            after = admin(ports, "GET", "/reverse_proxy/upstreams")[2]
        finally:
            stop(proc)
        roles = {f"127.0.0.1:{ports['dead']}": "dead", f"127.0.0.1:{ports['live']}": "live"}
        reports[name] = [
            sorted(({**u, "address": roles[u["address"]]} for u in json.loads(r)), key=str)
            for r in (before, after)
        ]
    dead = {"address": "dead", "num_requests": 0}
    live = {"address": "live", "num_requests": 0, "fails": 0}
    assert reports["caddy"] == [[{**dead, "fails": 1}, live], [{**dead, "fails": 0}, live]]
    assert reports["zeroserve"] == reports["caddy"]
