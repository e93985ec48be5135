"""The `cache` global option of caddyserver/cache-handler: the plugin's `cache` app.

The stock Caddy binary has no such plugin, so the expected app JSON is derived from the
plugin's sources (parseCaddyfileGlobalOption and SouinApp, as listed in
docs/COMPATIBILITY.md, "Plugins"). The app is marshalled from the struct, not through a
map, so the key order is part of every expectation here (compared on encoded bytes).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from zeroserve.adapt import adapt_caddyfile
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import encode


def adapt(options: str, sites: str = ":80 {\n\tcache\n\trespond hi\n}\n") -> dict:
    return adapt_caddyfile(("{\n" + options + "\n}\n" + sites).encode(), "Caddyfile").config


def app_of(options: str) -> object:
    return adapt(options)["apps"]["cache"]


def provider(
    found: bool = False, url: str = "", path: str = "", configuration: object = None
) -> dict:
    return {"found": found, "url": url, "path": path, "configuration": configuration}


def endpoint(basepath: str = "", enable: bool = False) -> dict:
    return {"basepath": basepath, "enable": enable, "security": False}


def api(**endpoints: dict) -> dict:
    return {
        "basepath": endpoints.pop("basepath", ""),
        "debug": endpoint(),
        "prometheus": endpoint(),
        "souin": endpoint(),
        **endpoints,
        "security": {"basepath": "", "enable": False, "secret": "", "users": None},
    }


def app(**values: object) -> dict:
    """The app of a bare `cache` option, in SouinApp's field order, with `values` put in
    place (keys after `api` go at the end)."""
    out: dict = {
        "allowed_http_verbs": [],
        "allowed_additional_status_codes": None,
        "badger": provider(),
        "cache_name": "",
        "cdn": {},
        "default_cache_control": "",
        "max_cacheable_body_bytes": 0,
        "distributed": False,
        "headers": [],
        "key": {},
        "mode": "",
        "olric": provider(),
        "redis": provider(),
        "etcd": provider(),
        "nats": provider(),
        "nuts": provider(),
        "otter": provider(),
        "regex": {"exclude": ""},
        "storers": None,
        "timeout": {"backend": "0s", "cache": "0s"},
        "ttl": "2m0s",
        "simplefs": provider(),
        "stale": "0s",
        "disable_coalescing": False,
        "Storers": None,
        "SurrogateStorage": None,
        "SurrogateKeyDisabled": False,
    }
    cache_keys = values.pop("cache_keys", None)
    if cache_keys is not None:
        out["cache_keys"] = cache_keys
    out["api"] = values.pop("api", api())
    out.update(values)
    return out


def test_bare_option_is_the_plugins_defaults() -> None:
    """ttl 120s and headers [] are the global parser's starting values; the rest is zero."""
    got = app_of("\tcache")
    assert encode(got) == encode(app())
    assert encode(got).startswith(b'{"allowed_http_verbs":[],"allowed_additional_status_codes"')


def test_every_subdirective() -> None:
    got = app_of("""\tcache {
\t\tallowed_http_verbs GET POST
\t\tallowed_http_verbs PUT
\t\tallowed_additional_status_codes 299 nope 302
\t\tapi {
\t\t\tbasepath /cache-api
\t\t\tdebug
\t\t\tprometheus {
\t\t\t\tbasepath /metrics
\t\t\t}
\t\t\tsouin {
\t\t\t\tbasepath /souin
\t\t\t}
\t\t}
\t\tcache_keys {
\t\t\t^/static/.+css$ {
\t\t\t\thash
\t\t\t\ttemplate {path}
\t\t\t\tdisable_body
\t\t\t}
\t\t\t/api/ {
\t\t\t\theaders Authorization
\t\t\t\tdisable_vary
\t\t\t}
\t\t}
\t\tcache_name edge
\t\tcdn {
\t\t\tzone_id z
\t\t\tstrategy hard
\t\t\tservice_id s
\t\t\tapi_key k
\t\t\tdynamic false
\t\t}
\t\tdefault_cache_control public, max-age=30
\t\theaders Accept-Language
\t\tkey {
\t\t\theaders X-Arm
\t\t\thide
\t\t\tdisable_host
\t\t}
\t\tlog_level debug
\t\tmax_cacheable_body_bytes 65536
\t\tmode strict
\t\tbadger {
\t\t\tpath /var/badger
\t\t\tconfiguration {
\t\t\t\tValueDir /v
\t\t\t\tSyncWrites false
\t\t\t\tCompression 2
\t\t\t\tEncryptionKey secret
\t\t\t}
\t\t}
\t\tolric {
\t\t\turl olric:3320
\t\t}
\t\tsimplefs {
\t\t\tconfiguration {
\t\t\t\tsize 100
\t\t\t\tpath /tmp/fs
\t\t\t}
\t\t}
\t\tregex {
\t\t\texclude /admin/.*
\t\t}
\t\tstale 1m30s
\t\tstorers badger olric
\t\ttimeout {
\t\t\tcache 100ms
\t\t\tbackend 5s
\t\t}
\t\tttl 10m
\t\tdisable_coalescing
\t\tdisable_surrogate_key
\t}""")
    expected = app(
        allowed_http_verbs=["GET", "POST", "PUT"],
        allowed_additional_status_codes=[299, 302],
        badger=provider(
            True,
            path="/var/badger",
            configuration={
                "Compression": 2,
                "EncryptionKey": "c2VjcmV0",
                "SyncWrites": False,
                "ValueDir": "/v",
            },
        ),
        cache_name="edge",
        cdn={"api_key": "k", "strategy": "hard", "service_id": "s", "zone_id": "z"},
        default_cache_control="public, max-age=30",
        max_cacheable_body_bytes=65536,
        distributed=True,
        headers=["Accept-Language"],
        key={"disable_host": True, "hide": True, "headers": ["X-Arm"]},
        mode="strict",
        olric=provider(True, url="olric:3320"),
        regex={"exclude": "/admin/.*"},
        storers=["badger", "olric"],
        timeout={"backend": "5s", "cache": "100ms"},
        ttl="10m0s",
        simplefs=provider(True, configuration={"path": "/tmp/fs", "size": 100}),
        stale="1m30s",
        disable_coalescing=True,
        SurrogateKeyDisabled=True,
        # global options are read before placeholder shorthands are replaced
        cache_keys={
            "^/static/.+css$": {"disable_body": True, "hash": True, "template": "{path}"},
            "/api/": {"disable_vary": True, "headers": ["Authorization"]},
        },
        api=api(
            basepath="/cache-api",
            debug=endpoint(enable=True),
            prometheus=endpoint("/metrics", True),
            souin=endpoint("/souin", True),
        ),
        log_level="debug",
    )
    assert encode(got) == encode(expected)


def test_the_app_sorts_before_the_standard_apps() -> None:
    """Apps sit in a Go map (caddy.ModuleMap): `cache` comes out before `http`, `tls`."""
    config = adapt("\tcache\n\tlocal_certs", "example.com {\n\trespond hi\n}\n")
    assert encode(config["apps"]).startswith(b'{"cache":{')
    text = encode(config).decode()
    assert text.index('"cache":') < text.index('"http":') < text.index('"tls":')


def test_an_option_block_alone_still_makes_the_app() -> None:
    config = adapt_caddyfile(b"{\n\tcache {\n\t\tttl 5s\n\t}\n}\n", "Caddyfile").config
    assert list(config["apps"]) == ["cache"]
    assert config["apps"]["cache"]["ttl"] == "5s"


def test_the_last_option_wins_and_bad_durations_are_ignored() -> None:
    got = app_of("\tcache {\n\t\tttl 1h\n\t}\n\tcache {\n\t\tstale soon\n\t}")
    assert (got["ttl"], got["stale"]) == ("2m0s", "0s")


def test_a_second_api_block_replaces_the_first() -> None:
    got = app_of(
        "\tcache {\n\t\tapi {\n\t\t\tsouin\n\t\t}\n\t\tapi {\n\t\t\tbasepath /x\n\t\t}\n\t}"
    )
    assert encode(got["api"]) == encode(api(basepath="/x"))


def test_a_cache_keys_regexp_that_breaks_the_json_makes_the_app_null() -> None:
    """CacheKeys.MarshalJSON quotes the regexp unescaped: `\\.` is no JSON escape, so
    json.Marshal fails and caddyconfig.JSON leaves a nil RawMessage."""
    config = adapt(
        "\tcache {\n\t\tcache_keys {\n\t\t\t.+\\.css {\n\t\t\t\thide\n\t\t\t}\n\t\t}\n\t}"
    )
    assert config["apps"]["cache"] is None
    assert b'"cache":null' in encode(config)
    # an escape JSON knows goes through, decoded
    config = adapt("\tcache {\n\t\tcache_keys {\n\t\t\t\\/x {\n\t\t\t\thide\n\t\t\t}\n\t\t}\n\t}")
    assert config["apps"]["cache"]["cache_keys"] == {"/x": {"hide": True}}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("\tcache {\n\t\tbogus\n\t}", "unsupported root directive: bogus, at Caddyfile:3"),
        ("\tcache {\n\t\tapi {\n\t\t\tgraphql\n\t\t}\n\t}", "unsupported api directive: graphql"),
        (
            "\tcache {\n\t\tapi {\n\t\t\tsouin {\n\t\t\t\tpath /x\n\t\t\t}\n\t\t}\n\t}",
            "unsupported souin directive: path, at Caddyfile:5",
        ),
        (
            "\tcache {\n\t\tapi {\n\t\t\tprometheus {\n\t\t\t\tx\n\t\t\t}\n\t\t}\n\t}",
            "unsupported prometheus directive: x",
        ),
        (
            "\tcache {\n\t\tapi {\n\t\t\tdebug {\n\t\t\t\tx\n\t\t\t}\n\t\t}\n\t}",
            "unsupported debug directive: x",
        ),
        ("\tcache {\n\t\tcdn {\n\t\t\tzone\n\t\t}\n\t}", "unsupported cdn directive: zone"),
        (
            "\tcache {\n\t\tkey {\n\t\t\tdisable_path\n\t\t}\n\t}",
            "unsupported key directive: disable_path",
        ),
        (
            "\tcache {\n\t\tcache_keys {\n\t\t\t/a {\n\t\t\t\tx\n\t\t\t}\n\t\t}\n\t}",
            "unsupported cache_keys (/a) directive: x",
        ),
        ("\tcache {\n\t\totter {\n\t\t\turl x\n\t\t}\n\t}", "unsupported otter directive: url"),
        (
            "\tcache {\n\t\tregex {\n\t\t\tinclude x\n\t\t}\n\t}",
            "unsupported regex directive: include",
        ),
        (
            "\tcache {\n\t\ttimeout {\n\t\t\tread 1s\n\t\t}\n\t}",
            "unsupported timeout directive: read",
        ),
        ("\tcache {\n\t\tmode a b\n\t}", "mode must contains only one arg: [a b] given"),
        (
            "\tcache {\n\t\tmax_cacheable_body_bytes 1k\n\t}",
            "unsupported max_cacheable_body_bytes: [1k]",
        ),
        # the plugin indexes the missing argument (a Go panic); zeroserve says what is missing
        ("\tcache {\n\t\tttl\n\t}", "wrong argument count or unexpected line ending after 'ttl'"),
        (
            "\tcache {\n\t\tapi {\n\t\t\tbasepath\n\t\t}\n\t}",
            "wrong argument count or unexpected line ending after 'basepath'",
        ),
    ],
)
def test_errors(options: str, message: str) -> None:
    with pytest.raises(CaddyfileError) as info:
        adapt(options)
    assert str(info.value).startswith("parsing caddyfile tokens for 'cache': ")
    assert message in str(info.value)


def test_caddy_ratelimit_registers_no_global_option() -> None:
    with pytest.raises(CaddyfileError, match="unrecognized global option: rate_limit"):
        adapt("\trate_limit {\n\t\tjitter 0.1\n\t}")


CLI_CADDYFILE = """{
\tcache {
\t\tttl 30s
\t\tallowed_http_verbs GET POST
\t\t%s
\t}
}
:8080 {
\tcache
\trespond hi
}
"""


def cli(
    zeroserve_bin: Path, verb: str, tmp_path: Path, extra: str = ""
) -> subprocess.CompletedProcess:
    path = tmp_path / "Caddyfile"
    path.write_text(CLI_CADDYFILE % extra)
    return subprocess.run(
        [str(zeroserve_bin), verb, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_adapt_and_validate_through_the_cli(zeroserve_bin: Path, tmp_path: Path) -> None:
    proc = cli(zeroserve_bin, "adapt", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{"apps":{"cache":{"allowed_http_verbs":["GET","POST"],')
    cache = json.loads(proc.stdout)["apps"]["cache"]
    assert (cache["ttl"], cache["headers"]) == ("30s", [])
    proc = cli(zeroserve_bin, "validate", tmp_path)
    assert proc.returncode == 0
    assert proc.stderr.endswith("Valid configuration\n")

    proc = cli(zeroserve_bin, "validate", tmp_path, "redis {\n\t\t\turl 127.0.0.1:6379\n\t\t}")
    assert proc.returncode == 1
    assert "'redis' storage is not supported by the engine" in proc.stderr
    proc = cli(zeroserve_bin, "adapt", tmp_path, "stale")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith(
        "parsing caddyfile tokens for 'cache': wrong argument count or unexpected line ending "
        f"after 'stale', at {tmp_path / 'Caddyfile'}:5"
    )
