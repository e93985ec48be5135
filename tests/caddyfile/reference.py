"""Rune-by-rune oracles for the fast paths of the Caddyfile lexer and formatter.

`zeroserve.caddyfile.lexer` and `.format` take shortcuts (whole words,
comments and whitespace runs at a time); these take none, so comparing both on
random input checks that the shortcuts never change a token, a line number, an
error or a formatted byte. Used by the tests and by bench/fuzz_caddyfile.py.
"""

from __future__ import annotations

from zeroserve.caddyfile import CaddyfileError
from zeroserve.caddyfile.format import Formatter
from zeroserve.caddyfile.lexer import HEREDOC_MARKER, WHITESPACE, decode_go

Lexed = list[tuple[int, str, str, str]] | tuple[str, str]


def reference_lex(body: bytes) -> list[tuple[int, str, str, str]]:
    """Caddy's lexer.next, one rune at a time, no shortcuts (the oracle for the fast paths)."""
    src = decode_go(body)
    if src.startswith("\ufeff"):
        src = src[1:]
    pos, line, skipped = 0, 1, 0
    out: list[tuple[int, str, str, str]] = []
    while True:
        val: list[str] = []
        comment = quoted = bt = in_heredoc = heredoc_escaped = escaped = False
        marker = ""
        tok_line = 0
        made = None
        while made is None:
            if pos >= len(src):
                if val:
                    if in_heredoc:
                        raise CaddyfileError(
                            f"incomplete heredoc <<{marker} on line #{line + skipped}, "
                            f"expected ending marker {marker}"
                        )
                    made = ""
                    break
                return out
            ch = src[pos]
            pos += 1
            if (
                not (quoted or bt)
                and not (in_heredoc or heredoc_escaped)
                and "".join(val[:2]) == "<<"
            ):
                if ch == " ":
                    made = ""
                    break
                if ch == "\r":
                    continue
                if ch == "\n":
                    if len(val) == 2:
                        raise CaddyfileError(
                            f"missing opening heredoc marker on line #{line}; must contain only "
                            "alphanumeric characters, dashes and underscores; got empty string"
                        )
                    if "".join(val[:3]) == "<<<":
                        raise CaddyfileError(
                            f"too many '<' for heredoc on line #{line}; only use two, "
                            "for example <<END"
                        )
                    marker = "".join(val[2:])
                    if not HEREDOC_MARKER.match(marker):
                        raise CaddyfileError(
                            f"heredoc marker on line #{line} must contain only alphanumeric "
                            f"characters, dashes and underscores; got '{marker}'"
                        )
                    in_heredoc = True
                    skipped += 1
                    val = []
                    continue
                val.append(ch)
                continue
            if in_heredoc:
                val.append(ch)
                if ch == "\n":
                    skipped += 1
                if len(val) >= len(marker) and "".join(val[len(val) - len(marker) :]) == marker:
                    body_text = "".join(val)[: -len(marker)]
                    last_nl = body_text.rfind("\n")
                    pad = body_text[last_nl + 1 :]
                    lines = body_text[: last_nl + 1].split("\n")[:-1]
                    res = ""
                    for num, lt in enumerate(lines):
                        if lt in ("", "\r"):
                            res += "\n"
                            continue
                        if lt.find(pad) != 0:
                            raise CaddyfileError(
                                f"mismatched leading whitespace in heredoc <<{marker} on line "
                                f"#{line + num + 1} [{lt}], expected whitespace [{pad}] to "
                                "match the closing marker"
                            )
                        res += (lt[len(pad) :] + "\n").replace("\r", "")
                    if res.endswith("\n"):
                        res = res[:-1]
                    val = list(res)
                    line += skipped
                    skipped = 0
                    made = "<"
                continue
            if not escaped and not bt and ch == "\\":
                escaped = True
                continue
            if quoted or bt:
                if quoted and escaped:
                    if ch != '"':
                        val.append("\\")
                    escaped = False
                elif (quoted and ch == '"') or (bt and ch == "`"):
                    made = ch
                    break
                if ch == "\n":
                    line += 1 + skipped
                    skipped = 0
                val.append(ch)
                continue
            if ch in WHITESPACE:
                if ch == "\r":
                    continue
                if ch == "\n":
                    if escaped:
                        skipped += 1
                        escaped = False
                    else:
                        line += 1 + skipped
                        skipped = 0
                    comment = False
                if val:
                    made = ""
                    break
                continue
            if ch == "#" and not val:
                comment = True
            if comment:
                continue
            if not val:
                tok_line = line
                if ch == '"':
                    quoted = True
                    continue
                if ch == "`":
                    bt = True
                    continue
            if escaped:
                if ch == "<":
                    heredoc_escaped = True
                else:
                    val.append("\\")
                escaped = False
            val.append(ch)
        out.append((tok_line, "".join(val), made, marker))


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
