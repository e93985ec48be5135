"""The `cache` handler (cache-handler/Souin Caddyfile syntax) in the engine, in front of
`reverse_proxy` to a real Python origin on 127.0.0.1 that counts the requests it gets:
freshness, revalidation, Vary, keys versioned by deployment and experiment, coalescing,
the memory bound, no-store/private, purge through the admin endpoint.

The store is process-wide, so each test runs under its own deployment id."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.engine.conftest import Pair, engine_mod, with_listen
from tests.support import QuietHandler, free_port
from zeroserve.adapt import adapt_caddyfile


class Origin:
    """An origin whose answers depend on the path; it counts requests per path and keeps
    the validators each request carried."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.conditional: list[str] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        origin = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                origin.answer(self)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                origin.answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits[path]

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        path, _, query = h.path.partition("?")
        with self.lock:
            self.hits[path] += 1
            n = self.hits[path]
            if h.headers.get("If-None-Match"):
                self.conditional.append(h.headers["If-None-Match"])
        kind = path.split("/")[1]
        status, headers, body = 200, {}, f"{path} #{n}".encode()
        if kind in ("slow", "slower"):
            time.sleep(0.4 if kind == "slow" else 1.5)
            headers["Cache-Control"] = "max-age=60"
        elif kind == "fresh":
            headers["Cache-Control"] = "max-age=60"
        elif kind == "expires":
            headers["Expires"] = time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60)
            )
        elif kind == "stale":
            headers["Cache-Control"] = "max-age=0"
        elif kind in ("reval", "swr"):
            headers["ETag"] = '"v1"'
            headers["Cache-Control"] = "max-age=1"
            if kind == "swr":
                headers["Cache-Control"] += ", stale-while-revalidate=30"
                if n > 1:
                    time.sleep(1.5)
            if h.headers.get("If-None-Match") == '"v1"':
                status, body = 304, b""
        elif kind == "sie":
            headers["Cache-Control"] = "max-age=1, stale-if-error=60"
            if n > 1:
                status = 503
        elif kind == "vary":
            headers["Cache-Control"] = "max-age=60"
            headers["Vary"] = "Accept-Language"
            body = f"{h.headers.get('Accept-Language')} #{n}".encode()
        elif kind in ("no-store", "private"):
            headers["Cache-Control"] = "no-store" if kind == "no-store" else "private, max-age=60"
        elif kind == "big":
            headers["Cache-Control"] = "max-age=60"
            body = (f"{path} #{n} ".encode() * 100_000)[: int(query or 1000)]
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if status != 304:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = Origin()
    yield o
    o.close()


def caddyfile_config(origin_port: int, options: str = "ttl 10s") -> dict:
    text = f"""{{
    order cache before rewrite
}}
:80 {{
    cache {{
        {options}
    }}
    reverse_proxy 127.0.0.1:{origin_port}
}}
"""
    return adapt_caddyfile(text.encode()).config


@pytest.fixture
def engine(origin: Origin, tmp_path) -> Iterator[tuple[object, int]]:
    pair = Pair(None, tmp_path)
    e, port = pair.engine(caddyfile_config(origin.port))
    e.configure_cache(f"test-{uuid.uuid4()}")
    yield e, port
    pair.close()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def status_of(port: int, path: str, headers: dict[str, str] | None = None) -> str:
    return get(port, path, headers)[1].get("cache-status", "")


def test_fresh_response_is_served_from_cache(origin: Origin, engine) -> None:
    _, port = engine
    s, h, body = get(port, "/fresh/a?q=1")
    assert (s, body) == (200, b"/fresh/a #1")
    key = f"GET-http-127.0.0.1:{port}-/fresh/a?q=1"
    assert h["cache-status"] == f"Souin; fwd=uri-miss; stored; key={key}"
    s, h, body = get(port, "/fresh/a?q=1")
    assert (s, body) == (200, b"/fresh/a #1")
    assert h["cache-status"].startswith("Souin; hit; ttl=")
    assert h["cache-status"].endswith(f"; key={key}; detail=DEFAULT")
    assert int(h["age"]) <= 1 and h["content-length"] == str(len(body))
    assert origin.count("/fresh/a") == 1
    # A different query is a different key.
    assert get(port, "/fresh/a?q=2")[2] == b"/fresh/a #2"


def test_expires_and_configured_ttl_give_freshness(origin: Origin, engine) -> None:
    _, port = engine
    for path in ("/expires/a", "/plain/a"):
        get(port, path)
        assert "hit" in status_of(port, path)
        assert origin.count(path) == 1


def test_max_age_zero_is_stale_at_once(origin: Origin, engine) -> None:
    _, port = engine
    get(port, "/stale/a")
    assert get(port, "/stale/a")[2] == b"/stale/a #2"


def test_request_no_cache_goes_upstream(origin: Origin, engine) -> None:
    _, port = engine
    get(port, "/fresh/nc")
    assert get(port, "/fresh/nc", {"Cache-Control": "no-cache"})[2] == b"/fresh/nc #2"


def test_revalidation_with_etag_refreshes_on_304(origin: Origin, engine) -> None:
    _, port = engine
    assert get(port, "/reval/a")[2] == b"/reval/a #1"
    time.sleep(1.2)
    s, h, body = get(port, "/reval/a")
    assert (s, body) == (200, b"/reval/a #1")
    assert "fwd=stale; fwd-status=304" in h["cache-status"]
    assert origin.count("/reval/a") == 2 and '"v1"' in origin.conditional
    # Refreshed: fresh again without asking the origin.
    assert "hit" in status_of(port, "/reval/a")
    assert origin.count("/reval/a") == 2


def test_stale_while_revalidate_serves_stale_during_revalidation(origin: Origin, engine) -> None:
    _, port = engine
    get(port, "/swr/a")
    time.sleep(1.2)
    revalidating = threading.Thread(target=get, args=(port, "/swr/a"))
    revalidating.start()
    time.sleep(0.3)
    started = time.monotonic()
    s, h, body = get(port, "/swr/a")
    elapsed = time.monotonic() - started
    revalidating.join()
    assert (s, body) == (200, b"/swr/a #1")
    assert "fwd=stale" in h["cache-status"] and elapsed < 1.0, (h, elapsed)
    assert origin.count("/swr/a") == 2


def test_stale_if_error_stands_in_for_a_failing_origin(origin: Origin, engine) -> None:
    _, port = engine
    assert get(port, "/sie/a")[2] == b"/sie/a #1"
    time.sleep(1.2)
    s, h, body = get(port, "/sie/a")
    assert (s, body) == (200, b"/sie/a #1")
    assert h["cache-status"].endswith("; fwd=stale; fwd-status=503"), h["cache-status"]
    assert origin.count("/sie/a") == 2


def test_vary_keeps_one_variant_per_request_value(origin: Origin, engine) -> None:
    _, port = engine
    en, fr = {"Accept-Language": "en"}, {"Accept-Language": "fr"}
    assert get(port, "/vary/a", en)[2] == b"en #1"
    assert get(port, "/vary/a", fr)[2] == b"fr #2"
    assert get(port, "/vary/a", en)[2] == b"en #1"
    assert get(port, "/vary/a", fr)[2] == b"fr #2"
    assert origin.count("/vary/a") == 2


def test_no_store_and_private_are_never_stored(origin: Origin, engine) -> None:
    _, port = engine
    for kind, detail in (
        ("no-store", "detail=NO-STORE-DIRECTIVE"),
        ("private", "detail=PRIVATE-OR-AUTHENTICATED-RESPONSE"),
    ):
        for _ in range(3):
            assert detail in status_of(port, f"/{kind}/a")
        assert origin.count(f"/{kind}/a") == 3
    # Credentials make an otherwise shareable response private.
    for _ in range(2):
        get(port, "/fresh/auth", {"Authorization": "Basic eDp5"})
    assert origin.count("/fresh/auth") == 2


def test_keys_are_versioned_by_deployment_and_experiment(origin: Origin, engine) -> None:
    e, port = engine
    d1, d2 = f"d1-{uuid.uuid4()}", f"d2-{uuid.uuid4()}"
    e.configure_cache(d1)
    get(port, "/fresh/v")
    assert "hit" in status_of(port, "/fresh/v")
    e.configure_cache(d2)
    assert get(port, "/fresh/v")[2] == b"/fresh/v #2"
    assert "hit" in status_of(port, "/fresh/v")
    e.configure_cache(d1)
    assert get(port, "/fresh/v")[2] == b"/fresh/v #1"
    assert origin.count("/fresh/v") == 2

    e.configure_cache(d1, experiment_header="X-Experiment")
    a, b = {"X-Experiment": "a"}, {"X-Experiment": "b"}
    assert get(port, "/fresh/x", a)[2] == b"/fresh/x #1"
    assert get(port, "/fresh/x", b)[2] == b"/fresh/x #2"
    assert get(port, "/fresh/x", a)[2] == b"/fresh/x #1"
    assert get(port, "/fresh/x", b)[2] == b"/fresh/x #2"
    e.configure_cache(d1, experiment_cookie="arm")
    assert get(port, "/fresh/x", {"Cookie": "z=1; arm=c"})[2] == b"/fresh/x #3"
    assert get(port, "/fresh/x", {"Cookie": "arm=c"})[2] == b"/fresh/x #3"
    assert origin.count("/fresh/x") == 3


def test_concurrent_misses_make_one_upstream_request(origin: Origin, engine) -> None:
    _, port = engine
    n = 12
    results: list[tuple[int, dict, bytes]] = []
    barrier = threading.Barrier(n)

    def client() -> None:
        barrier.wait()
        results.append(get(port, "/slow/c"))

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert origin.count("/slow/c") == 1
    assert {(s, body) for s, _, body in results} == {(200, b"/slow/c #1")}
    statuses = sorted(h["cache-status"].split(";")[1].strip() for _, h, _ in results)
    assert statuses == ["fwd=uri-miss"] + ["hit"] * (n - 1)


def test_a_leader_that_goes_away_hands_its_flight_on(origin: Origin, engine) -> None:
    _, port = engine
    leader = socket.create_connection(("127.0.0.1", port))
    leader.sendall(b"GET /slower/gone HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    time.sleep(0.3)
    leader.close()
    time.sleep(0.1)
    started = time.monotonic()
    s, _, body = get(port, "/slower/gone")
    # Led its own fetch at once (not after the 10 s lock timeout).
    assert s == 200 and time.monotonic() - started < 5, time.monotonic() - started
    assert origin.count("/slower/gone") == 2


def test_disable_coalescing_sends_every_miss_upstream(origin: Origin, tmp_path) -> None:
    pair = Pair(None, tmp_path)
    try:
        _, port = pair.engine(caddyfile_config(origin.port, "ttl 10s\n        disable_coalescing"))
        threads = [threading.Thread(target=get, args=(port, "/slow/nc")) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert origin.count("/slow/nc") == 4
        assert "hit" in status_of(port, "/slow/nc")
    finally:
        pair.close()


def test_unsupported_method_bypasses(origin: Origin, engine) -> None:
    _, port = engine
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in (1, 2):
        c.request("POST", "/fresh/post", body=b"x")
        r = c.getresponse()
        assert r.read() == f"/fresh/post #{n}".encode()
        assert r.getheader("Cache-Status") == "Souin; fwd=bypass; detail=UNSUPPORTED-METHOD"
    c.close()


def test_memory_bound_evicts_old_deployments_first(origin: Origin, engine) -> None:
    e, port = engine
    old, new = f"old-{uuid.uuid4()}", f"new-{uuid.uuid4()}"
    bound = 1 << 20
    e.purge_cache()
    e.configure_cache(old, max_bytes=bound)
    for i in range(4):
        get(port, f"/big/old{i}?100000")
    e.configure_cache(new, max_bytes=bound)
    for i in range(8):
        assert "stored" in status_of(port, f"/big/new{i}?100000")
    stats = e.cache_stats()
    assert stats["bytes"] <= bound and stats["max_bytes"] == bound
    for i in range(8):
        assert "hit" in status_of(port, f"/big/new{i}?100000"), i
    # 12 x 100 KB > 1 MiB: making room took the old deployment's least recent entries,
    # not one of the current deployment's.
    e.configure_cache(old, max_bytes=bound)
    for i in range(2):
        assert "stored" in status_of(port, f"/big/old{i}?100000")
    # More than fits: the least recently used go, the store stays under its bound.
    for i in range(30):
        get(port, f"/big/more{i}?100000")
        assert e.cache_stats()["bytes"] <= bound
    assert "hit" in status_of(port, "/big/more29?100000")
    assert "stored" in status_of(port, "/big/more0?100000")
    # A response over an eighth of the bound is passed through, not stored.
    assert get(port, "/big/huge?200000")[2][:10] == b"/big/huge "
    assert "hit" not in status_of(port, "/big/huge?200000")


def test_purge_through_the_admin_endpoint(origin: Origin, tmp_path) -> None:
    from zeroserve.agent.runner import Agent
    from zeroserve.plan.appliance import CacheSettings

    port, admin = free_port(), free_port()
    config = with_listen(caddyfile_config(origin.port), port)
    config["admin"] = {"listen": f"127.0.0.1:{admin}"}
    agent = Agent(config, 1, None, None, f"admin-{uuid.uuid4()}", CacheSettings())
    agent.start()
    try:
        for path in ("/fresh/p1", "/fresh/p2", "/fresh/q1"):
            get(port, path)
            assert "hit" in status_of(port, path)
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
        c.request("DELETE", "/zeroserve/cache?key=/fresh/p")
        r = c.getresponse()
        assert (r.status, json.loads(r.read())) == (200, {"purged": 2})
        assert get(port, "/fresh/p1")[2] == b"/fresh/p1 #2"
        assert "hit" in status_of(port, "/fresh/q1")
        c.request("GET", "/zeroserve/cache")
        stats = json.loads(c.getresponse().read())
        assert stats["entries"] >= 2 and stats["deploy_id"].startswith("admin-")
        c.request("DELETE", "/zeroserve/cache")
        assert json.loads(c.getresponse().read())["purged"] >= 2
        assert "stored" in status_of(port, "/fresh/q1")
        c.close()
    finally:
        agent.stop()


def test_engine_rejects_storages_it_does_not_have(origin: Origin) -> None:
    config = caddyfile_config(origin.port, "redis {\n url 127.0.0.1:6379\n}")
    with pytest.raises(engine_mod.EngineError, match="'redis' storage is not supported"):
        engine_mod.Engine(json.dumps(with_listen(config, free_port())), 1)


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"experiment_header": "X-Arm", "experiment_cookie": "arm"}, "exclude each other"),
        ({"experiment_header": ""}, "cache.experiment_header: expected a name"),
        ({"max_bytes": 0}, "cache.max_bytes: expected a positive number of bytes"),
        ({"size": 1}, "cache.size: unknown setting (known: experiment_header, "),
    ],
)
def test_appliance_config_cache_table(table: dict, error: str) -> None:
    from zeroserve.plan import ApplianceConfigError, parse_appliance_config

    with pytest.raises(ApplianceConfigError, match=re.escape(error)):
        parse_appliance_config({"cache": table}, "edge.toml")
    good = parse_appliance_config({"cache": {"experiment_cookie": "arm", "max_bytes": 1 << 20}})
    assert (good.cache.experiment_cookie, good.cache.max_bytes) == ("arm", 1 << 20)
