"""Any input either parses or raises CaddyfileError: no other exception, no hang, bounded memory."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroserve.caddyfile import CaddyfileError, parse, parser
from zeroserve.caddyfile.format import format_caddyfile

STRUCTURED = st.lists(
    st.sampled_from(
        [
            "a",
            "{",
            "}",
            "\n",
            " ",
            "import",
            "s",
            "(s)",
            "&(r)",
            "{args[0]}",
            "{args[:]}",
            "{args[-1]}",
            "{block}",
            "{blocks.a}",
            "<<E\n",
            "E",
            '"',
            "`",
            "\\",
            "#",
            "@m",
            ",",
            "*",
            "?",
            "[",
            "{$HOME}",
            "{$X:y}",
            "\x00",
            "\xff",
        ]
    ),
    max_size=80,
).map(lambda parts: "".join(parts).encode("utf-8", "surrogateescape"))


def parse_or_error(body: bytes) -> None:
    start = time.monotonic()
    try:
        parse("Caddyfile", body)
    except CaddyfileError as exc:
        assert str(exc)
    format_caddyfile(body)
    assert time.monotonic() - start < 5


@settings(
    max_examples=1500,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=300))
def test_any_bytes(body):
    parse_or_error(body)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    # relative imports in random input must not reach the repo's files
    monkeypatch.chdir(tmp_path)


@settings(
    max_examples=1500,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(STRUCTURED)
def test_structured_soup(body):
    parse_or_error(body)


def bomb(levels: int, payload: str) -> bytes:
    """Snippet i imports snippet i+1 twice: 2**levels copies of the payload."""
    lines = [f"(s{i}) {{\n\timport s{i + 1}\n\timport s{i + 1}\n}}" for i in range(levels)]
    lines.append(f"(s{levels}) {{\n\t{payload}\n}}")
    lines.append("a {\n\timport s0\n}")
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (bomb(30, "respond x"), "more than 5000 imports"),
        (bomb(12, "respond " + "x " * 400), "imports expand to more than 100000 tokens"),
    ],
    ids=["many-imports", "many-tokens"],
)
def test_import_bombs_are_refused_in_bounded_time_and_memory(body, message, monkeypatch):
    # smaller caps than the real ones keep the test quick; the mechanism is the same
    monkeypatch.setattr(parser, "MAX_IMPORTS", 5000)
    monkeypatch.setattr(parser, "MAX_TOKENS", 100_000)
    start = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(CaddyfileError) as err:
            parse("Caddyfile", body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message in str(err.value)
    assert peak < 256 << 20
    assert time.monotonic() - start < 60


def test_real_caps_leave_room_for_large_configs():
    assert parser.MAX_IMPORTS >= 50_000 and parser.MAX_TOKENS >= 500_000
