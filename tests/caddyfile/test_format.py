"""format_caddyfile against the real `caddy fmt`, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.caddyfile import corpus
from tests.caddyfile.oracle import caddy_fmt
from tests.caddyfile.reference import reference_format
from zeroserve.caddyfile.format import format_caddyfile

FIXTURES = corpus.fixtures()

TRICKY = [
    b"",
    b"   \n\t\n",
    b"a{\nb\n}",
    b"a {b}",
    b"a {\n\n\n\n  b\n\n\n}\n\n\n\nc {\nd\n}",
    b"import foo\n{\n\tdebug\n}\n",
    b"import foo\n\n{\n\tdebug\n}\n",
    b"import foo\n# note\n{\n}\n",
    b"a {\n respond <<EOF\n     keep   this\n   EOF\n}\n",
    b"a {\n respond <<EOF\n{ not a brace }\nEOF 200\n}\n",
    b"a {\n respond <<EO!\n x\n}\n",
    b"a {\n respond \\<<EOF\n}\n",
    b"a {\n respond `multi\nline {\n`\n}\n",
    b'a {\n respond "unterminated\n}\n',
    b'a {\n respond "with \\" quote {" 200\n}\n',
    b"a { # comment {\n b\n}\n",
    b"a {\n\tb # trailing\n}   # after\n",
    b"a {{x}",
    b"{{",
    b"a {\n  {x}\n}",
    b"x {{a}} y",
    b"a {\n b \\\n   c\n}\n",
    b"\xef\xbb\xbfa {\n b\n}\n",
    b"a {\r\n b\r\n}\r\n",
    b"a {\n b \xff\xfe\n}\n",
    b"((((((((((((a {\n" + b"{\n" * 12 + b"}\n" * 13,
    b"a\n}\n}\n",
    b'"{" {\n}',
    b"a {\n\t@m path /x\n\thandle @m {\n\t\trespond 1\n\t}\n}\n",
    b"(snip) {\n\theader X {args[0]}\n}\n\na {\n\timport snip 1\n}\n",
]


def test_empty_input_is_one_newline():
    assert format_caddyfile(b"") == b"\n"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_corpus_matches_caddy_fmt(fixture):
    assert format_caddyfile(fixture.caddyfile) == caddy_fmt(fixture.caddyfile)


@pytest.mark.parametrize("body", TRICKY, ids=range(len(TRICKY)))
def test_tricky_matches_caddy_fmt(body):
    assert format_caddyfile(body) == caddy_fmt(body)


FRAGMENTS = [
    "a",
    "foo",
    "import",
    "{",
    "}",
    "\n",
    "\n",
    " ",
    "\t",
    "#",
    '"',
    "`",
    "\\",
    "<<",
    "EOF",
    "<",
    "\r",
    "{$X}",
    "{x}",
    "(s)",
    "@m",
    "*",
    "\u00a0",
    "é",
    "\n\n\n",
    "EOF\n",
    "<<EOF\n",
    "  EOF",
    ",",
    "\u0085",
    "\u2028",
    "\x1c",
    "\u3000",
]


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_random_fragments_match_caddy_fmt(text):
    body = text.encode()
    assert format_caddyfile(body) == caddy_fmt(body)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS + ["}x", "x{", '"a b"', "# c\n", "\\<<"]), max_size=50))
def test_shortcuts_agree_with_rune_loop(parts):
    body = "".join(parts).encode()
    assert format_caddyfile(body) == reference_format(body)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.binary(max_size=200))
def test_format_is_total(body):
    out = format_caddyfile(body)
    assert out == reference_format(body) and out.endswith(b"\n")
