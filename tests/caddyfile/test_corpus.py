"""The shared upstream fixtures: syntax errors come from parse, everything else parses."""

from __future__ import annotations

import pytest

from tests.caddyfile import corpus
from zeroserve.caddyfile import CaddyfileError, parse

# Fixtures whose expected error Caddy raises in its caddyfile package (lexer or
# parser); every other fixture's error comes from the HTTP adapter.
SYNTAX_ERRORS = {
    "heredoc_invalid_marker.caddyfiletest",
    "heredoc_mismatched_whitespace.caddyfiletest",
    "import_cycle.caddyfiletest",
    "matcher_outside_site_block.caddyfiletest",
}

FIXTURES = corpus.fixtures()


def test_every_syntax_error_fixture_is_present():
    assert SYNTAX_ERRORS <= {f.name for f in FIXTURES if f.is_error}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_fixture(fixture, monkeypatch):
    monkeypatch.chdir(corpus.CORPUS)
    if fixture.name in SYNTAX_ERRORS:
        with pytest.raises(CaddyfileError) as err:
            parse("Caddyfile", fixture.caddyfile)
        assert fixture.expected in str(err.value)
    else:
        blocks = parse("Caddyfile", fixture.caddyfile)
        assert blocks, "a fixture always has at least one block"
