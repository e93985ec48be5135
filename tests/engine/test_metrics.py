"""`caddy_http_*` metrics: the engine's `Engine.metrics()` against what the real Caddy serves
at its admin `/metrics`, after the same requests to the same config. Everything must match
except the timings (duration sums and the buckets they fall in)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import with_listen
from tests.engine.wire import exchange, wait_listening
from tests.support import clean_env, free_port

CONFIG = {
    "apps": {
        "http": {
            "metrics": {},
            "servers": {
                "srvA": {
                    "routes": [
                        {
                            "handle": [
                                {"handler": "headers", "response": {"set": {"X-A": ["1"]}}},
                                {"handler": "vars", "foo": "bar"},
                            ]
                        },
                        {
                            "match": [{"path": ["/err"]}],
                            "handle": [{"handler": "error", "status_code": 403}],
                        },
                        {"match": [{"path": ["/nf"]}], "handle": [{"handler": "vars", "x": "y"}]},
                        {
                            "match": [{"path": ["/404"]}],
                            "handle": [
                                {"handler": "static_response", "status_code": 404, "body": "no"}
                            ],
                        },
                        {"handle": [{"handler": "static_response", "body": "hi" * 200}]},
                    ]
                }
            },
        }
    }
}

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /err HTTP/1.1\r\nHost: t\r\nUser-Agent: x\r\n\r\n",
    b"GET /nf HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /404 HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /p?q=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 300\r\n\r\n" + b"x" * 300,
    b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"PROPFIND / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: t\r\n\r\n",
]

SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def parse(text: str) -> tuple[list[str], dict[tuple, str]]:
    """The `caddy_http_*` HELP/TYPE lines in order, and every sample by (name, labels)."""
    meta: list[str] = []
    samples: dict[tuple, str] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            if " caddy_http_" in line:
                meta.append(line)
            continue
        m = SAMPLE.match(line)
        assert m, line
        if m.group(1).startswith("caddy_http_"):
            samples[(m.group(1), m.group(2) or "")] = m.group(3)
    return meta, samples


def timing(key: tuple) -> bool:
    name, labels = key
    return "duration_seconds" in name and (name.endswith("_sum") or 'le="+Inf"' not in labels)


@pytest.fixture
def caddy_metrics(tmp_path: Path) -> Iterator[Callable[[dict], tuple[int, str]]]:
    """Starts a real Caddy serving a config; gives its port and the URL of its /metrics."""
    from tests.conftest import VENV_BIN

    if not (VENV_BIN / "caddy").exists():
        pytest.skip("caddy is not installed in the venv: run `make setup`")
    procs: list[subprocess.Popen] = []

    def start(config: dict) -> tuple[int, str]:
        port, admin = free_port(), free_port()
        cfg = with_listen(config, port)
        cfg["admin"] = {"listen": f"127.0.0.1:{admin}"}
        path = tmp_path / f"caddy-{port}.json"
        path.write_text(json.dumps(cfg))
        procs.append(
            subprocess.Popen(
                [str(VENV_BIN / "caddy"), "run", "--config", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=clean_env(),
            )
        )
        wait_listening(port)
        return port, f"http://127.0.0.1:{admin}/metrics"

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


def compare(servers, caddy_metrics, config: dict, requests: list[bytes]) -> dict[tuple, str]:
    """Sends `requests` to Caddy and an engine serving `config`; asserts the metrics match
    but for timings; returns the engine's samples."""
    caddy_port, url = caddy_metrics(config)
    engine, engine_port = servers.engine(config)
    for port in (caddy_port, engine_port):
        for req in requests:
            exchange(port, req, quiet=0.1)
    with urllib.request.urlopen(url, timeout=5) as r:
        theirs_meta, theirs = parse(r.read().decode())
    ours_meta, ours = parse(engine.metrics())
    assert ours_meta == theirs_meta
    assert set(ours) == set(theirs)
    differing = {k: (ours[k], theirs[k]) for k in ours if not timing(k) and ours[k] != theirs[k]}
    assert differing == {}
    return ours


def test_metrics_match_caddy(servers, caddy_metrics) -> None:
    ours = compare(servers, caddy_metrics, CONFIG, REQUESTS)
    # Not vacuous: the errors counter and the per-method series are there.
    assert ours[("caddy_http_request_errors_total", 'handler="error",server="srvA"')] == "1"
    assert any('method="OTHER"' in labels for _, labels in ours)


def test_no_metrics_without_the_option(servers) -> None:
    cfg = copy.deepcopy(CONFIG)
    del cfg["apps"]["http"]["metrics"]
    engine, port = servers.engine(cfg)
    exchange(port, REQUESTS[0], quiet=0.1)
    assert "caddy_http_" not in engine.metrics()
    assert "zeroserve_access_log_dropped_total 0\n" in engine.metrics()


def test_per_host_labels(servers, caddy_metrics) -> None:
    """`per_host` labels configured hosts by the Host header as sent; others are `_other`."""
    cfg = copy.deepcopy(CONFIG)
    cfg["apps"]["http"]["metrics"] = {"per_host": True}
    routes = cfg["apps"]["http"]["servers"]["srvA"]["routes"]
    routes.insert(0, {"match": [{"host": ["known.test"]}], "handle": [{"handler": "vars"}]})
    requests = [
        f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        for host in ("known.test", "KNOWN.test", "known.test:80", "evil.test")
    ]
    ours = compare(servers, caddy_metrics, cfg, requests)
    hosts = {labels.split(",")[1] for name, labels in ours if name.endswith("requests_total")}
    assert hosts == {'host="known.test"', 'host="_other"'}


def test_agent_metrics_view_has_both(tmp_path: Path) -> None:
    """The agent's `/metrics` view: the engine's families, then the layers' `zeroserve_*`."""
    from zeroserve.agent.runner import Agent

    port = free_port()
    agent = Agent(with_listen(CONFIG, port), workers=1)
    agent.engine.start()
    try:
        exchange(port, REQUESTS[0], quiet=0.1)
        text = agent.metrics().decode()
    finally:
        agent.engine.stop(0.0)
    assert text.index("caddy_http_requests_total") < text.index("zeroserve_edge_enabled 0")


def test_metrics_handler(servers, caddy_metrics) -> None:
    """The `metrics` directive's handler: Caddy's status and content type, the engine's
    families in the body (Caddy adds Go's runtime families, which have no counterpart)."""
    cfg = copy.deepcopy(CONFIG)
    routes = cfg["apps"]["http"]["servers"]["srvA"]["routes"]
    routes.insert(0, {"match": [{"path": ["/metrics"]}], "handle": [{"handler": "metrics"}]})
    caddy_port, _ = caddy_metrics(cfg)
    _, engine_port = servers.engine(cfg)
    heads = []
    for port in (caddy_port, engine_port):
        exchange(port, REQUESTS[0], quiet=0.1)
        reply = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", quiet=0.2).data
        head, _, body = reply.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        heads.append((lines[0], [h for h in lines if h.startswith("Content-Type:")]))
        assert b'caddy_http_requests_total{handler="headers",server="srvA"} 1' in body
    assert heads[1] == heads[0]


def test_in_flight_when_scraped_through_the_handler(servers, caddy_metrics) -> None:
    """Scraped by the `metrics` handler, the scraping request is inside every top-level route
    it entered: those series read 1 (the handler's own before any of its requests completed);
    scraped from outside, every series reads 0."""
    cfg = copy.deepcopy(CONFIG)
    routes = cfg["apps"]["http"]["servers"]["srvA"]["routes"]
    routes.insert(1, {"match": [{"path": ["/metrics"]}], "handle": [{"handler": "metrics"}]})
    caddy_port, url = caddy_metrics(cfg)
    engine, engine_port = servers.engine(cfg)

    def in_flight(text: str) -> dict[str, str]:
        _, samples = parse(text)
        return {k[1]: v for k, v in samples.items() if k[0] == "caddy_http_requests_in_flight"}

    def scrape(port: int) -> dict[str, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return in_flight(r.read().decode())

    seen = []
    for port in (caddy_port, engine_port):
        first = scrape(port)
        exchange(port, REQUESTS[0], quiet=0.1)
        seen.append((first, scrape(port)))
    assert seen[1] == seen[0]
    first, last = seen[1]
    assert first == {'handler="headers",server="srvA"': "1", 'handler="metrics",server="srvA"': "1"}
    assert last['handler="static_response",server="srvA"'] == "0"
    with urllib.request.urlopen(url, timeout=5) as r:
        outside = in_flight(r.read().decode())
    assert set(in_flight(engine.metrics()).values()) == set(outside.values()) == {"0"}
