"""Rune-by-rune oracles for the fast paths of the Caddyfile lexer and formatter.

`zeroserve.caddyfile.lexer` and `.format` take shortcuts (whole words,
comments and whitespace runs at a time); these take none, so comparing both on
random input checks that the shortcuts never change a token, a line number, an
error or a formatted byte. Used by the tests and by bench/fuzz_caddyfile.py.
"""

from __future__ import annotations

from zeroserve.caddyfile import CaddyfileError
from zeroserve.caddyfile.format import Formatter
from zeroserve.caddyfile.lexer import WHITESPACE, _Lexer, decode_go

Lexed = list[tuple[int, str, str, str]] | tuple[str, str]


def reference_lex(body: bytes) -> list[tuple[int, str, str, str]]:
    """Caddy's lexer.next between tokens one rune at a time (the oracle for the fast paths).

    `_Lexer.run` skips whitespace and comments and takes plain words in runs;
    here every rune between tokens is stepped through as Caddy does, and each
    token is read by the lexer's own rune loop (`_Lexer._token`).
    """
    src = decode_go(body)
    if src.startswith("\ufeff"):
        src = src[1:]
    lexer = _Lexer(src, "F")
    pos = 0
    escaped = comment = False
    while pos < len(src):
        ch = src[pos]
        if ch == "\\" and not escaped:
            escaped = True
            pos += 1
            continue
        if ch in WHITESPACE:
            pos += 1
            if ch == "\n":
                lexer.newline(escaped)
                escaped = comment = False
            continue
        if comment or ch == "#":
            comment = True
            pos += 1
            continue
        lexer.pos = pos
        if not lexer._token(escaped):
            break
        pos = lexer.pos
        escaped = False
    return [(t.line, t.text, t.was_quoted, t.heredoc_marker) for t in lexer.tokens]


def lexed(body: bytes) -> Lexed:
    """The real lexer's tokens (line, text, quote, heredoc marker) or ('error', message)."""
    from zeroserve.caddyfile.lexer import tokenize

    try:
        if not body:
            raise CaddyfileError("EOF")
        return [(t.line, t.text, t.was_quoted, t.heredoc_marker) for t in tokenize(body, "F")]
    except CaddyfileError as exc:
        return ("error", str(exc))


def reference_lexed(body: bytes) -> Lexed:
    """`reference_lex` in the same shape as `lexed`."""
    try:
        if not body:
            raise CaddyfileError("EOF")
        return reference_lex(body)
    except CaddyfileError as exc:
        return ("error", str(exc))


_WS = "".join(WHITESPACE)


def reference_format(body: bytes) -> bytes:
    """Caddy's Format one rune at a time (the oracle for format_caddyfile's shortcuts).

    Drives the product's per-rune step for every rune, so only the shortcuts in
    `Formatter.run` differ between the two paths.
    """
    formatter = Formatter()
    for ch in decode_go(body).strip(_WS):
        formatter.step(ch)
    return formatter.finish().strip(_WS).encode() + b"\n"
