"""The harness itself: case files parse, framing is found, and a real difference is caught."""

from __future__ import annotations

from tests.differential.case import load_cases, parse_case, request_methods
from tests.differential.runner import run_case
from tests.differential.servers import ServerKind


def test_every_case_file_parses_with_unique_names():
    cases = load_cases()
    assert len({c.name for c in cases}) == len(cases)
    for case in cases:
        assert case.description, f"{case.name}: say what the case checks in its '#' lines"
        assert all(s.responses >= 1 for s in case.sections)


def test_pipelined_requests_are_counted_across_bodies():
    data = (
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nGET "
        b"POST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nGET\r\n0\r\n\r\n"
        b"HEAD /4 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert request_methods(data) == ["GET", "POST", "POST", "HEAD"]


def test_text_and_raw_sections(tmp_path):
    path = tmp_path / "demo.case"
    path.write_text(
        "# demo\n----\n{\n\tadmin off\n}\n:{PORT} {\n\trespond ok\n}\n"
        "=== text\nPOST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc\n"
        "=== rawsec raw responses=2 timeout=1.5\n"
        "GET / HTTP/1.1\\r\\nHost: {PORT}\\r\\n\\r\\n{PAUSE}{REPEAT:3:x}\\x00\n"
    )
    text, raw = parse_case(path).sections
    assert text.parts == (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",)
    assert raw.for_port(8) == (b"GET / HTTP/1.1\r\nHost: 8\r\n\r\n", b"xxx\x00")
    assert (raw.responses, raw.timeout) == (2, 1.5)


def test_a_real_difference_is_reported(caddy_bin, fixture_site, echo_upstream, tmp_path):
    """Two Caddies whose answers differ only in one header must be told apart."""
    path = tmp_path / "differs.case"
    path.write_text(
        "# differs\n----\n{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n"
        ":{PORT} {\n\theader X-Who {$ZS_DIFF_WHO:a}\n\trespond same\n}\n"
        "=== get\nGET / HTTP/1.1\nHost: a\n"
    )
    a = ServerKind("caddy", caddy_bin)
    b = ServerKind("caddy", caddy_bin, env=(("ZS_DIFF_WHO", "b"),))
    result = run_case(parse_case(path), a, b, fixture_site, echo_upstream, tmp_path)
    assert result.requests[0].diffs == ["header x-who: ['b'] instead of ['a']"]
