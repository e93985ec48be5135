"""Plugin directives: rate_limit (mholt/caddy-ratelimit) and cache (caddyserver/cache-handler).

The stock Caddy binary has neither plugin, so the expected handler JSON here is
derived from the plugins' sources (their Caddyfile parsers and struct tags, as
listed in docs/COMPATIBILITY.md, "Plugins").
"""

from __future__ import annotations

import pytest

from zeroserve.adapt import adapt_caddyfile
from zeroserve.caddyfile.errors import CaddyfileError

ORDERED = "{\n\torder rate_limit before basic_auth\n\torder cache before rewrite\n}\n"


def handlers(body: str) -> list[dict]:
    """The handlers of the one route a site with `body` adapts to."""
    caddyfile = ORDERED + ":80 {\n" + body + "\n}\n"
    config = adapt_caddyfile(caddyfile.encode(), "Caddyfile").config
    routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
    assert len(routes) == 1
    return routes[0]["handle"]


def adapt_error(body: str) -> str:
    with pytest.raises(CaddyfileError) as info:
        handlers(body)
    return str(info.value)


def test_rate_limit_full() -> None:
    (handler,) = handlers("""
rate_limit {
	zone by_ip {
		key {remote_host}
		window 1m
		events 100
	}
	zone static {
		events 5
		window 1.5s
	}
	distributed {
		read_interval 10s
		write_interval 2s
	}
	storage file_system /var/lib/rl
	jitter 0.2
	sweep_interval 2m
	unknown_subdirectives_are_ignored
}""")
    assert handler == {
        "handler": "rate_limit",
        "rate_limits": {
            "by_ip": {
                "key": "{http.request.remote.host}",
                "window": 60_000_000_000,
                "max_events": 100,
            },
            "static": {"window": 1_500_000_000, "max_events": 5},
        },
        "distributed": {"read_interval": 10_000_000_000, "write_interval": 2_000_000_000},
        "storage": {"module": "file_system", "root": "/var/lib/rl"},
        "jitter": 0.2,
        "sweep_interval": 120_000_000_000,
    }


def test_rate_limit_distributed_defaults() -> None:
    (handler,) = handlers("rate_limit {\n\tdistributed\n}")
    assert handler == {"handler": "rate_limit", "distributed": {}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "rate_limit x",
            "wrong argument count or unexpected line ending after 'x', at Caddyfile:6",
        ),
        (
            "rate_limit {\n\tzone z {\n\t\tevents 1\n\t}\n}",
            "a rate limit zone requires both a window and maximum events, at Caddyfile:9",
        ),
        (
            "rate_limit {\n\tzone z {\n\t\twindow 1m\n\t\twindow 2m\n\t}\n}",
            "zone window already specified: 60000000000, at Caddyfile:9",
        ),
        (
            "rate_limit {\n\tzone z {\n\t\tevents x\n\t}\n}",
            "invalid max events integer 'x': strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "rate_limit {\n\tjitter much\n}",
            "invalid jitter percentage 'much': "
            'strconv.ParseFloat: parsing "much": invalid syntax',
        ),
        (
            "rate_limit {\n\tstorage redis\n}",
            "getting module named 'caddy.storage.redis': "
            "module not registered: caddy.storage.redis",
        ),
    ],
)
def test_rate_limit_errors(body: str, message: str) -> None:
    assert message in adapt_error(body)


def _provider(found: bool = False, url: str = "", configuration: object = None) -> dict:
    return {"found": found, "url": url, "path": "", "configuration": configuration}


def _endpoint() -> dict:
    return {"basepath": "", "enable": False, "security": False}


def test_cache_full() -> None:
    (handler,) = handlers("""
cache {
	ttl 1h
	stale 30s
	allowed_http_verbs GET HEAD
	allowed_additional_status_codes 404 x 410
	default_cache_control public, max-age=60
	cache_name edge
	mode bypass
	headers Authorization
	storers redis
	max_cacheable_body_bytes 1048576
	redis {
		url 127.0.0.1:6379
		configuration {
			DB 2
			Addrs 127.0.0.1:6379
			DialTimeout 5s
			PoolFIFO
		}
	}
	key {
		disable_body
		hide
		headers Authorization
	}
	cache_keys {
		.+\\.css {
			disable_query
			template {path}
		}
	}
	cdn {
		provider fastly
		dynamic false
	}
	regex {
		exclude /admin.*
	}
	timeout {
		backend 10s
		cache 250ms
	}
	disable_coalescing
	disable_surrogate_key
	log_level debug
}""")
    redis = _provider(
        True,
        "127.0.0.1:6379",
        {"DB": 2, "Addrs": ["127.0.0.1:6379"], "DialTimeout": 5_000_000_000, "PoolFIFO": True},
    )
    default_cache = {
        "allowed_http_verbs": ["GET", "HEAD"],
        "allowed_additional_status_codes": [404, 410],
        "cache_name": "edge",
        "cdn": {"provider": "fastly"},
        "default_cache_control": "public, max-age=60",
        "max_cacheable_body_bytes": 1048576,
        "distributed": True,
        "headers": ["Authorization"],
        "key": {"disable_body": True, "hide": True, "headers": ["Authorization"]},
        "mode": "bypass",
        "regex": {"exclude": "/admin.*"},
        "storers": ["redis"],
        "timeout": {"backend": "10s", "cache": "250ms"},
        "ttl": "1h0m0s",
        "stale": "30s",
        "disable_coalescing": True,
        **{
            name: _provider()
            for name in ("badger", "etcd", "nats", "nuts", "olric", "otter", "simplefs")
        },
        "redis": redis,
    }
    assert handler == {
        "handler": "cache",
        "Configuration": {
            "DefaultCache": default_cache,
            "API": {
                "basepath": "",
                "debug": _endpoint(),
                "prometheus": _endpoint(),
                "souin": _endpoint(),
                "security": {"basepath": "", "enable": False, "secret": "", "users": None},
            },
            "cache_keys": {
                ".+\\.css": {"disable_query": True, "template": "{http.request.uri.path}"}
            },
            "URLs": None,
            "LogLevel": "debug",
            "SurrogateKeys": None,
            "SurrogateKeyDisabled": True,
        },
        **{
            name: _provider()
            for name in ("badger", "etcd", "nats", "nuts", "olric", "otter", "redis", "simplefs")
        },
        "key": {},
        "timeout": {"backend": "0s", "cache": "0s"},
        "ttl": "0s",
        "stale": "0s",
    }


def test_cache_bare_is_all_zero_values() -> None:
    (handler,) = handlers("cache")
    config = handler["Configuration"]
    assert config["DefaultCache"]["allowed_http_verbs"] == []
    assert config["DefaultCache"]["ttl"] == "0s"
    assert config["cache_keys"] == {}
    assert handler["ttl"] == "0s"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("cache {\n\tapi {\n\t}\n}", "'api' block must be global"),
        ("cache {\n\tbogus\n}", "unsupported root directive: bogus"),
        ("cache {\n\tredis {\n\t\tbogus x\n\t}\n}", "unsupported redis directive: bogus"),
        ("cache {\n\tmode a b\n}", "mode must contains only one arg: [a b] given"),
        ("cache {\n\tmax_cacheable_body_bytes -1\n}", "unsupported max_cacheable_body_bytes: [-1]"),
    ],
)
def test_cache_errors(body: str, message: str) -> None:
    assert message in adapt_error(body)


def test_rate_limit_needs_an_order() -> None:
    """caddy-ratelimit registers no place in the order, so its users write one."""
    caddyfile = ":80 {\n\trate_limit {\n\t\tjitter 0.1\n\t}\n}\n"
    with pytest.raises(CaddyfileError) as info:
        adapt_caddyfile(caddyfile.encode(), "Caddyfile")
    assert "rate_limit" in str(info.value)


def site_handlers(body: str) -> list[str]:
    caddyfile = ":80 {\n" + body + "\n}\n"
    routes = adapt_caddyfile(caddyfile.encode(), "Caddyfile").config["apps"]["http"]["servers"][
        "srv0"
    ]["routes"]
    return [h["handler"] for r in routes for h in r["handle"]]


def test_cache_takes_its_place_before_rewrite_as_the_plugin_registers() -> None:
    body = "respond hi\n\trewrite /a /b\n\tcache\n\theader X-A b"
    assert site_handlers(body) == ["headers", "cache", "rewrite", "static_response"]
    # an explicit `order` still wins, as Caddy's does over a registered place
    moved = "{\n\torder cache after respond\n}\n"
    caddyfile = moved + ":80 {\n\t" + body + "\n}\n"
    routes = adapt_caddyfile(caddyfile.encode(), "Caddyfile").config["apps"]["http"]["servers"][
        "srv0"
    ]["routes"]
    assert [h["handler"] for r in routes for h in r["handle"]][-1] == "cache"
