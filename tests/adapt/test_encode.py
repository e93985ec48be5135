"""caddyjson.encode against Go's encoding/json rules, and adapter selection."""

from __future__ import annotations

import json

import pytest

from zeroserve.adapt import adapt_config, is_caddyfile_name
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import GoMap, encode, module_object


def test_structs_keep_order_maps_sort() -> None:
    value = {"z": 1, "a": GoMap(b=2, a=1), "m": [GoMap(y=1, x=2)]}
    assert encode(value) == b'{"z":1,"a":{"a":1,"b":2},"m":[{"x":2,"y":1}]}'


def test_module_object_sorts_recursively_and_adds_name() -> None:
    handler = module_object({"routes": [{"match": [], "handle": []}], "b": 1}, "handler", "x")
    assert encode(handler) == b'{"b":1,"handler":"x","routes":[{"handle":[],"match":[]}]}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<a&b>", '"\\u003ca\\u0026b\\u003e"'),
        ('tab\tnl\ncr\rbs\\q"', '"tab\\tnl\\ncr\\rbs\\\\q\\""'),
        ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
        ("\b\f", '"\\b\\f"'),
        ("\u2028\u2029é", '"\\u2028\\u2029é"'),
    ],
)
def test_strings_escape_like_go(text: str, expected: str) -> None:
    assert encode(text).decode() == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0.1666, "0.1666"),
        (100.0, "100"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (123456789.0, "123456789"),
        (5000000000, "5000000000"),
        (-0.0, "-0"),
        (1e-6, "0.000001"),
    ],
)
def test_numbers_format_like_go(number: float, expected: str) -> None:
    assert encode(number).decode() == expected


def test_pretty_is_json_indent_with_tabs() -> None:
    assert encode({"a": [], "b": {}, "c": [1, {"d": None}]}, pretty=True) == (
        b'{\n\t"a": [],\n\t"b": {},\n\t"c": [\n\t\t1,\n\t\t{\n\t\t\t"d": null\n\t\t}\n\t]\n}'
    )


def test_json_config_passes_through() -> None:
    body = b'{"apps": {"http": {"servers": {}}}, "admin": {"disabled": true}}'
    for adapter, name in (("json", "Caddyfile"), (None, "caddy.json"), (None, "config")):
        result = adapt_config(body, name, adapter)
        assert result.config == json.loads(body)
        assert list(result.config) == ["apps", "admin"]
        assert result.warnings == []


def test_adapter_choice_by_name() -> None:
    assert is_caddyfile_name("Caddyfile")
    assert is_caddyfile_name("/etc/caddy/Caddyfile.prod")
    assert is_caddyfile_name("site.caddyfile")
    assert not is_caddyfile_name("caddyfile.json")
    assert not is_caddyfile_name("config.json")
    result = adapt_config(b":80 {\n\trespond hi\n}\n", "Caddyfile", None)
    assert result.config["apps"]["http"]["servers"]["srv0"]["listen"] == [":80"]


def test_bad_json_and_unknown_adapter_are_caddyfile_errors() -> None:
    with pytest.raises(CaddyfileError):
        adapt_config(b"{not json", "c.json", "json")
    with pytest.raises(CaddyfileError, match="unrecognized config adapter: yaml"):
        adapt_config(b"a: b", "c.yaml", "yaml")
