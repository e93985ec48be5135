"""Plain transcriptions of Caddy's lexer and formatter rune loops, as oracles.

`zeroserve.caddyfile.lexer` and `.format` take shortcuts (whole words,
comments and whitespace runs at a time); these take none, so comparing both on
random input checks that the shortcuts never change a token, a line number, an
error or a formatted byte. Used by the tests and by bench/fuzz_caddyfile.py.
"""

from __future__ import annotations

from zeroserve.caddyfile import CaddyfileError
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


_CLOSED, _OPENING, _OPENED = 0, 1, 2
_WS = "".join(WHITESPACE)


def reference_format(body: bytes) -> bytes:
    """Caddy's Format one rune at a time (the oracle for format_caddyfile's shortcuts)."""
    return _RuneFormatter().run(decode_go(body).strip(_WS)).strip(_WS).encode() + b"\n"


class _RuneFormatter:
    __slots__ = (
        "out",
        "last",
        "beginning_of_line",
        "nesting",
        "current_token",
        "line_first_token",
    )

    def __init__(self) -> None:
        self.out: list[str] = []
        self.last = ""  # the last rune written
        self.beginning_of_line = True
        self.nesting = 0
        self.current_token: list[str] = []
        self.line_first_token = ""

    def write(self, ch: str) -> None:
        self.out.append(ch)
        self.last = ch

    def indent(self) -> None:
        if self.nesting:
            self.out.append("\t" * self.nesting)
            self.last = "\t"

    def next_line(self) -> None:
        self.write("\n")
        self.beginning_of_line = True

    def finish_token(self) -> None:
        if self.current_token:
            if not self.line_first_token:
                self.line_first_token = "".join(self.current_token)
            self.current_token.clear()

    def run(self, text: str) -> str:
        write = self.write
        ws = WHITESPACE
        space = True  # the current/previous rune was whitespace (start counts)
        open_brace = False  # a '{' was seen and not yet decided on
        open_brace_written = False
        open_brace_space = False  # whitespace (not a newline) came before that '{'
        open_brace_own_line = False
        top_import = False
        new_lines = 0
        comment = False
        quotes = ""  # '', '"', '`', or '"`' (a backtick inside double quotes)
        escaped = False
        heredoc = _CLOSED
        heredoc_escaped = False
        marker: list[str] = []
        closing: list[str] = []

        for ch in text:
            if (
                quotes == ""
                and heredoc == _CLOSED
                and not heredoc_escaped
                and space
                and self.last == "<"
                and ch == "<"
            ):
                write(ch)
                heredoc = _OPENING
                space = False
                continue

            if heredoc == _OPENING:
                if ch == "\n":
                    if marker and HEREDOC_MARKER.match("".join(marker)):
                        heredoc = _OPENED
                    else:
                        marker = []
                        heredoc = _CLOSED
                        self.next_line()
                        continue
                    write(ch)
                    continue
                if ch in ws:
                    # a space means it's just a regular token, not a heredoc
                    marker = []
                    heredoc = _CLOSED
                else:
                    marker.append(ch)
                    write(ch)
                    continue

            if heredoc == _OPENED:
                closing.append(ch)
                if len(closing) > len(marker) + 1:
                    # the closing marker must be followed by whitespace
                    del closing[0]
                if ch in ws and closing[:-1] == marker:
                    marker = []
                    closing = []
                    heredoc = _CLOSED
                else:
                    write(ch)
                    if ch == "\n":
                        closing.clear()
                    continue

            if self.last == "<" and space:
                space = False

            if comment:
                if ch == "\n":
                    comment = False
                    space = True
                    self.next_line()
                    continue
                write(ch)
                continue

            if not escaped and ch == "\\":
                if space:
                    write(" ")
                    space = False
                write(ch)
                escaped = True
                continue

            if escaped:
                if ch == "<":
                    heredoc_escaped = True
                write(ch)
                escaped = False
                continue

            if ch == "`":
                if quotes == '"`':
                    quotes = '"'
                elif quotes == "`":
                    quotes = ""
                elif quotes == '"':
                    quotes = '"`'
                else:
                    quotes = "`"

            if quotes == '"':
                if ch == '"':
                    quotes = ""
                write(ch)
                continue

            if ch == '"':
                if quotes == "":
                    if space:
                        quotes = '"'
                elif quotes == '"`':
                    quotes = ""

            if "`" in quotes:
                if ch == "`" and space and not self.beginning_of_line:
                    write(" ")
                write(ch)
                space = False
                continue

            if ch in ws:
                self.finish_token()
                space = True
                heredoc_escaped = False
                if ch == "\n":
                    self.finish_token()
                    if self.line_first_token:
                        top_import = self.nesting == 0 and self.line_first_token == "import"
                    elif not open_brace or not open_brace_own_line or open_brace_written:
                        top_import = False
                    self.line_first_token = ""
                    new_lines += 1
                continue
            space_prior = space
            space = False

            # a "regular" rune: not a space, not in a comment, quote or escape

            if ch == "#":
                comment = True

            if open_brace and not open_brace_written and (space_prior or ch == "{"):
                open_brace = False
                self.write_open_brace(open_brace_space, open_brace_own_line and top_import)
                open_brace_written = True
                open_brace_own_line = False
                new_lines = 0

            if ch == "{":
                self.finish_token()
                open_brace = True
                open_brace_space = space_prior and not self.beginning_of_line
                open_brace_own_line = new_lines > 0
                if open_brace_space and new_lines == 0:
                    write(" ")
                open_brace_written = False
                continue

            if ch == "}" and (space_prior or not open_brace):
                self.finish_token()
                if self.last != "\n":
                    self.next_line()
                if self.nesting > 0:
                    self.nesting -= 1
                self.indent()
                write("}")
                new_lines = 0
                continue

            for _ in range(min(new_lines, 2)):
                self.next_line()
            new_lines = 0
            if self.beginning_of_line:
                self.indent()
            if self.nesting == 0 and self.last == "}" and self.beginning_of_line:
                self.next_line()
                self.next_line()

            if not self.beginning_of_line and space_prior:
                write(" ")

            if open_brace and not open_brace_written:
                write("{")
                open_brace_written = True

            if space_prior and ch == "<":
                space = True

            self.current_token.append(ch)
            write(ch)
            self.beginning_of_line = False

        if open_brace and not open_brace_written:
            # input ended right after a '{' that was still waiting for its line
            self.write_open_brace(open_brace_space, open_brace_own_line and top_import)
        return "".join(self.out)

    def write_open_brace(self, space_before: bool, own_line: bool) -> None:
        """Write a pending block-opening '{' and start the block's first line."""
        if self.nesting == 0 and self.last == "}":
            self.next_line()
            self.next_line()
        if own_line:
            # a '{' alone after a top-level import line opens a new block
            if self.last != "\n":
                self.next_line()
            self.indent()
        elif self.beginning_of_line:
            self.indent()
        elif not space_before or self.last not in WHITESPACE:
            self.write(" ")
        self.write("{")
        self.next_line()
        # bound the indentation of absurd inputs (Caddy issue #4169)
        if self.nesting < 10:
            self.nesting += 1
