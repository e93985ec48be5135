"""The cache plugin's `cache` global option reaching the engine's cache handlers.

A Caddyfile's global `cache { ... }` becomes the `cache` app; each `cache` handler takes
from it what it leaves unset (cache-handler's FromApp), which shows in what a client sees:
`Cache-Status` (name, ttl, stored or bypassed), `Age` and `Cache-Control`.
"""

from __future__ import annotations

import http.client
import re
import uuid
from collections.abc import Iterator

import pytest

from tests.engine.conftest import Pair
from tests.engine.test_cache import Origin
from zeroserve.adapt import adapt_caddyfile
from zeroserve.cli.command import CommandError
from zeroserve.cli.validate import check_config


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = Origin()
    yield o
    o.close()


def config(origin: Origin, global_cache: str, handler: str = "") -> dict:
    text = f"""{{
\tcache {{
\t\t{global_cache}
\t}}
}}
:80 {{
\tcache {{
\t\t{handler}
\t}}
\treverse_proxy 127.0.0.1:{origin.port}
}}
"""
    return adapt_caddyfile(text.encode(), "Caddyfile").config


@pytest.fixture
def serve(tmp_path) -> Iterator:
    pair = Pair(None, tmp_path)

    def start(cfg: dict) -> int:
        e, port = pair.engine(cfg)
        e.configure_cache(f"test-{uuid.uuid4()}")
        return port

    yield start
    pair.close()


def request(port: int, method: str, path: str) -> tuple[bytes, dict[str, str]]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=b"x" if method == "POST" else None)
        r = c.getresponse()
        return r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def hit_ttl(status: str) -> int:
    m = re.match(r"^(\S+); hit; ttl=(\d+); ", status)
    assert m, status
    return int(m.group(2))


def test_global_ttl_and_name_reach_a_bare_handler(origin: Origin, serve) -> None:
    port = serve(config(origin, "ttl 7s\n\t\tcache_name edge"))
    path = f"/plain/{uuid.uuid4()}"
    body, h = request(port, "GET", path)
    assert h["cache-status"] == f"edge; fwd=uri-miss; stored; key=GET-http-127.0.0.1:{port}-{path}"
    again, h = request(port, "GET", path)
    assert again == body
    # without the app the handler's default would be 120 s
    assert 5 <= hit_ttl(h["cache-status"]) <= 7
    assert h["age"] in ("0", "1")
    assert origin.count(path) == 1


def test_the_handlers_own_ttl_wins_over_the_apps(origin: Origin, serve) -> None:
    port = serve(config(origin, "ttl 7s", "ttl 60s"))
    path = f"/plain/{uuid.uuid4()}"
    request(port, "GET", path)
    assert hit_ttl(request(port, "GET", path)[1]["cache-status"]) > 50


def test_global_default_cache_control_gives_freshness(origin: Origin, serve) -> None:
    port = serve(config(origin, "default_cache_control public, max-age=3"))
    path = f"/plain/{uuid.uuid4()}"
    _, h = request(port, "GET", path)
    assert h["cache-control"] == "public, max-age=3"
    _, h = request(port, "GET", path)
    assert h["cache-control"] == "public, max-age=3"
    assert 1 <= hit_ttl(h["cache-status"]) <= 3
    # a response with its own Cache-Control keeps it
    fresh = f"/fresh/{uuid.uuid4()}"
    assert request(port, "GET", fresh)[1]["cache-control"] == "max-age=60"


def test_global_allowed_http_verbs_make_a_post_cacheable(origin: Origin, serve) -> None:
    path = f"/fresh/{uuid.uuid4()}"
    plain = serve(config(origin, "ttl 10s"))
    for _ in range(2):
        assert request(plain, "POST", path)[1]["cache-status"] == (
            "Souin; fwd=bypass; detail=UNSUPPORTED-METHOD"
        )
    assert origin.count(path) == 2

    port = serve(config(origin, "allowed_http_verbs GET POST"))
    path = f"/fresh/{uuid.uuid4()}"
    first, h = request(port, "POST", path)
    assert "stored" in h["cache-status"]
    second, h = request(port, "POST", path)
    assert (second, origin.count(path)) == (first, 1)
    assert "; hit; " in h["cache-status"]
    # the plugin adds the handler's verbs to the app's: only PUT here is not cached
    port = serve(config(origin, "allowed_http_verbs POST", "allowed_http_verbs GET"))
    path = f"/fresh/{uuid.uuid4()}"
    request(port, "GET", path)
    assert "; hit; " in request(port, "GET", path)[1]["cache-status"]


def test_global_key_options_shape_the_key(origin: Origin, serve) -> None:
    port = serve(config(origin, "key {\n\t\t\tdisable_host\n\t\t\tdisable_scheme\n\t\t}"))
    path = f"/fresh/{uuid.uuid4()}"
    assert request(port, "GET", path)[1]["cache-status"].endswith(f"key=GET-{path}")


def test_validate_refuses_a_global_storage_the_engine_lacks(origin: Origin) -> None:
    check_config(config(origin, "ttl 5s"))
    with pytest.raises(CommandError, match="'redis' storage is not supported"):
        check_config(config(origin, "redis {\n\t\t\turl 127.0.0.1:6379\n\t\t}"))
    # `storers` only names an order of stores; the engine keeps its memory store
    check_config(config(origin, "storers badger redis"))
