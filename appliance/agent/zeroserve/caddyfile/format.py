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
    return Formatter().run(decode_go(body).strip(_WS)).strip(_WS).encode() + b"\n"


class Formatter:
    """Caddy's Format state machine.

    `step` is Caddy's loop body for one rune; `run` feeds it a whole text but
    copies runs of runes that cannot change the state in one go. Driving
    `step` alone (then `finish`) gives the same output rune by rune, which is
    how the tests check the shortcuts.
    """

    __slots__ = (
        "out",
        "last",
        "beginning_of_line",
        "nesting",
        "current_token",
        "line_first_token",
        "space",
        "open_brace",
        "open_brace_written",
        "open_brace_space",
        "open_brace_own_line",
        "top_import",
        "new_lines",
        "comment",
        "quotes",
        "escaped",
        "heredoc",
        "heredoc_escaped",
        "marker",
        "closing",
    )

    def __init__(self) -> None:
        self.out: list[str] = []
        self.last = ""  # the last rune written
        self.beginning_of_line = True
        self.nesting = 0
        self.current_token: list[str] = []
        self.line_first_token = ""
        self.space = True  # the current/previous rune was whitespace (start counts)
        self.open_brace = False  # a '{' was seen and not yet decided on
        self.open_brace_written = False
        self.open_brace_space = False  # whitespace (not a newline) came before that '{'
        self.open_brace_own_line = False
        self.top_import = False
        self.new_lines = 0
        self.comment = False
        self.quotes = ""  # '', '"', '`', or '"`' (a backtick inside double quotes)
        self.escaped = False
        self.heredoc = _CLOSED
        self.heredoc_escaped = False
        self.marker: list[str] = []
        self.closing: list[str] = []

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
        """Format `text`, taking the shortcuts; returns the output (see `finish`)."""
        out = self.out
        step = self.step
        n = len(text)
        i = 0
        while i < n:
            if (
                self.heredoc == _CLOSED
                and not self.escaped
                and not self.comment
                and self.quotes == ""
            ):
                # fast paths: provably the same as stepping rune by rune
                ch = text[i]
                if ch in _BLANKS:
                    self.finish_token()
                    self.space = True
                    self.heredoc_escaped = False
                    i = _BLANK_RUN.match(text, i).end()
                    continue
                if self.space and ch not in '"<' and self.last != "<":
                    m = _WORD_RUN.match(text, i)
                    if m:
                        # a plain word starts: the regular-rune steps for its first
                        # rune (with whitespace before it), then the rest at once
                        self.space = False
                        if self.open_brace and not self.open_brace_written:
                            self.flush_open_brace()
                        if self.new_lines:
                            self.next_line()
                            if self.new_lines > 1:
                                self.next_line()
                            self.new_lines = 0
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
            if self.heredoc == _CLOSED and not self.space and not self.escaped:
                run = None
                if self.comment:
                    end = text.find("\n", i)
                    run = text[i : end if end >= 0 else n] or None
                elif self.quotes == '"':
                    m = _QUOTED_RUN.match(text, i)
                    run = m.group() if m else None
                elif (
                    self.quotes == ""
                    and self.new_lines == 0
                    and not self.beginning_of_line
                    and (self.open_brace_written or not self.open_brace)
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
            step(text[i])
            i += 1
        return self.finish()

    def step(self, ch: str) -> None:
        """One iteration of Caddy's rune loop."""
        write = self.write
        ws = WHITESPACE
        if (
            self.quotes == ""
            and self.heredoc == _CLOSED
            and not self.heredoc_escaped
            and self.space
            and self.last == "<"
            and ch == "<"
        ):
            write(ch)
            self.heredoc = _OPENING
            self.space = False
            return

        if self.heredoc == _OPENING:
            if ch == "\n":
                if self.marker and HEREDOC_MARKER.match("".join(self.marker)):
                    self.heredoc = _OPENED
                else:
                    self.marker = []
                    self.heredoc = _CLOSED
                    self.next_line()
                    return
                write(ch)
                return
            if ch in ws:
                # a space means it's just a regular token, not a heredoc
                self.marker = []
                self.heredoc = _CLOSED
            else:
                self.marker.append(ch)
                write(ch)
                return

        if self.heredoc == _OPENED:
            closing = self.closing
            closing.append(ch)
            if len(closing) > len(self.marker) + 1:
                # the closing marker must be followed by whitespace
                del closing[0]
            if ch in ws and closing[:-1] == self.marker:
                self.marker = []
                self.closing = []
                self.heredoc = _CLOSED
            else:
                write(ch)
                if ch == "\n":
                    closing.clear()
                return

        if self.last == "<" and self.space:
            self.space = False

        if self.comment:
            if ch == "\n":
                self.comment = False
                self.space = True
                self.next_line()
                return
            write(ch)
            return

        if not self.escaped and ch == "\\":
            if self.space:
                write(" ")
                self.space = False
            write(ch)
            self.escaped = True
            return

        if self.escaped:
            if ch == "<":
                self.heredoc_escaped = True
            write(ch)
            self.escaped = False
            return

        quotes = self.quotes
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
            self.quotes = quotes
            write(ch)
            return

        if ch == '"':
            if quotes == "":
                if self.space:
                    quotes = '"'
            elif quotes == '"`':
                quotes = ""
        self.quotes = quotes

        if "`" in quotes:
            if ch == "`" and self.space and not self.beginning_of_line:
                write(" ")
            write(ch)
            self.space = False
            return

        if ch in ws:
            self.finish_token()
            self.space = True
            self.heredoc_escaped = False
            if ch == "\n":
                self.finish_token()
                if self.line_first_token:
                    self.top_import = self.nesting == 0 and self.line_first_token == "import"
                elif not self.open_brace or not self.open_brace_own_line or self.open_brace_written:
                    self.top_import = False
                self.line_first_token = ""
                self.new_lines += 1
            return
        space_prior = self.space
        self.space = False

        # a "regular" rune: not a space, not in a comment, quote or escape

        if ch == "#":
            self.comment = True

        if self.open_brace and not self.open_brace_written and (space_prior or ch == "{"):
            self.flush_open_brace()

        if ch == "{":
            self.finish_token()
            self.open_brace = True
            self.open_brace_space = space_prior and not self.beginning_of_line
            self.open_brace_own_line = self.new_lines > 0
            if self.open_brace_space and self.new_lines == 0:
                write(" ")
            self.open_brace_written = False
            return

        if ch == "}" and (space_prior or not self.open_brace):
            self.finish_token()
            if self.last != "\n":
                self.next_line()
            if self.nesting > 0:
                self.nesting -= 1
            self.indent()
            write("}")
            self.new_lines = 0
            return

        for _ in range(min(self.new_lines, 2)):
            self.next_line()
        self.new_lines = 0
        if self.beginning_of_line:
            self.indent()
        if self.nesting == 0 and self.last == "}" and self.beginning_of_line:
            self.next_line()
            self.next_line()

        if not self.beginning_of_line and space_prior:
            write(" ")

        if self.open_brace and not self.open_brace_written:
            write("{")
            self.open_brace_written = True

        if space_prior and ch == "<":
            self.space = True

        self.current_token.append(ch)
        write(ch)
        self.beginning_of_line = False

    def finish(self) -> str:
        """End of input: write a '{' still waiting for its line; returns the output."""
        if self.open_brace and not self.open_brace_written:
            self.write_open_brace(
                self.open_brace_space, self.open_brace_own_line and self.top_import
            )
        return "".join(self.out)

    def flush_open_brace(self) -> None:
        """A later rune decided the pending '{': write it and start its block."""
        self.open_brace = False
        self.write_open_brace(self.open_brace_space, self.open_brace_own_line and self.top_import)
        self.open_brace_written = True
        self.open_brace_own_line = False
        self.new_lines = 0

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
