"""Go's conversions as Caddyfile code sees them (strconv, fmt verbs)."""

from __future__ import annotations

import pytest

from zeroserve.caddyfile.gofmt import (
    go_atoi,
    go_float,
    go_parse_bool,
    go_parse_float,
    go_quote,
    go_scalar,
    go_sprintf,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ("+7", 7), ("-0", 0), ("9223372036854775807", 2**63 - 1)]
    + [(bad, None) for bad in ("", " 1", "1_0", "٣", "9223372036854775808", "0x10", "1.0")],
)
def test_atoi(text, value):
    assert go_atoi(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("0x1p-2", 0.25),
        ("Inf", float("inf")),
    ]
    + [(bad, None) for bad in ("", "1e", "1_000.0", " 1", "0x1.8", "1e400", "abc")],
)
def test_parse_float(text, value):
    assert go_parse_float(text) == value


def test_parse_bool_and_scalar():
    assert [go_parse_bool(t) for t in ("t", "TRUE", "0", "yes")] == [True, True, False, None]
    assert [go_scalar(t) for t in ("1", "1.25", "true", "1e400", "x")] == [
        1,
        1.25,
        True,
        "1e400",
        "x",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (1e-5, "1e-05"),
        (100.0, "100"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (float("nan"), "NaN"),
    ],
)
def test_float_like_go_v(value, text):
    assert go_float(value) == text


def test_sprintf_verbs():
    assert go_sprintf("%s|%v|%d|%q|%%|%v|%v", "a", ["x", 2], 3, 'q"\x01', True, None) == (
        'a|[x 2]|3|"q\\"\\x01"|%|true|<nil>'
    )
    assert go_quote("tab\there é") == '"tab\\there é"'
