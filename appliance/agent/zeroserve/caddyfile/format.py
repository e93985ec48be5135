"""`caddy fmt`: Caddy v2.11.7's `caddyfile.Format`, rune for rune.

The formatter does not lex. It walks the runes once and decides, per rune,
what whitespace, braces and indentation to write; words, comments, quoted
and backtick strings, escapes and heredoc bodies are copied as they are.
Its decisions depend on a handful of flags (the state below), so this is a
transcription of that state machine rather than a re-formatting of tokens:
a token-based formatter would disagree with Caddy on odd inputs (a brace
glued to a word, a comment after a brace, unterminated quotes), and the
differential tests in tests/caddyfile compare every output with the real
`caddy fmt`.

Caddy's rules, briefly: one tab per nesting level (at most 10); '{' joins
the end of the previous line, except a '{' on its own line right after a
top-level ``import`` line; '}' goes on its own line; at most one blank line;
a blank line after each top-level block; trailing whitespace trimmed; one
final newline.
"""

from __future__ import annotations

import re

from zeroserve.caddyfile.lexer import HEREDOC_MARKER, WHITESPACE, decode_go

_CLOSED, _OPENING, _OPENED = 0, 1, 2
_WS = "".join(WHITESPACE)
# Runs the state machine would copy one rune at a time without changing state:
# the rest of a word, the inside of a double-quoted string, the rest of a comment.
_WORD_RUN = re.compile("[^" + "".join(f"\\u{ord(c):04x}" for c in _WS) + "{}\\\\#`]+")
_QUOTED_RUN = re.compile('[^\\\\`"]+')
_BLANKS = frozenset(_WS.replace("\n", ""))
_BLANK_RUN = re.compile("[" + "".join(f"\\u{ord(c):04x}" for c in _BLANKS) + "]+")


def format_caddyfile(body: bytes) -> bytes:
    """Format a Caddyfile exactly like `caddy fmt`; never fails."""
    return _Formatter().run(decode_go(body).strip(_WS)).strip(_WS).encode() + b"\n"


class _Formatter:
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

        out = self.out
        n = len(text)
        i = 0
        while i < n:
            if heredoc == _CLOSED and not escaped and not comment and quotes == "":
                # fast paths: provably the same as the rune loop below
                ch = text[i]
                if ch in _BLANKS:
                    self.finish_token()
                    space = True
                    heredoc_escaped = False
                    i = _BLANK_RUN.match(text, i).end()
                    continue
                if space and ch not in '"<' and self.last != "<":
                    m = _WORD_RUN.match(text, i)
                    if m:
                        # a plain word starts: the regular-rune steps for its first
                        # rune (with whitespace before it), then the rest at once
                        space = False
                        if open_brace and not open_brace_written:
                            open_brace = False
                            self.write_open_brace(
                                open_brace_space, open_brace_own_line and top_import
                            )
                            open_brace_written = True
                            open_brace_own_line = False
                            new_lines = 0
                        if new_lines:
                            self.next_line()
                            if new_lines > 1:
                                self.next_line()
                            new_lines = 0
                        if self.beginning_of_line:
                            self.indent()
                            if self.nesting == 0 and self.last == "}":
                                self.next_line()
                                self.next_line()
                        if not self.beginning_of_line:
                            out.append(" ")
                        run = m.group()
                        self.current_token.append(run)
                        out.append(run)
                        self.last = run[-1]
                        self.beginning_of_line = False
                        i = m.end()
                        continue
            if heredoc == _CLOSED and not space and not escaped:
                run = None
                if comment:
                    end = text.find("\n", i)
                    run = text[i : end if end >= 0 else n] or None
                elif quotes == '"':
                    m = _QUOTED_RUN.match(text, i)
                    run = m.group() if m else None
                elif (
                    quotes == ""
                    and new_lines == 0
                    and not self.beginning_of_line
                    and (open_brace_written or not open_brace)
                ):
                    m = _WORD_RUN.match(text, i)
                    if m:
                        run = m.group()
                        self.current_token.append(run)
                if run is not None:
                    out.append(run)
                    self.last = run[-1]
                    i += len(run)
                    continue
            ch = text[i]
            i += 1
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
        return "".join(out)

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
