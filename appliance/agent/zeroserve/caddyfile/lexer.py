"""Caddyfile lexer: bytes in, tokens (with file and line) out.

Mirrors Caddy v2.11.7 `caddyconfig/caddyfile/lexer.go` rule for rule, quirks
included, because every token text and line number ends up in adapted JSON or
in an error message:

- the input is decoded like Go decodes runes: each byte of an invalid UTF-8
  sequence becomes one U+FFFD; a leading BOM is dropped; empty input is the
  error ``EOF``;
- tokens are separated by Go's ``unicode.IsSpace`` characters; a carriage
  return outside quotes is ignored altogether (``a\\rb`` lexes as ``ab``);
- ``"..."`` quotes allow ``\\"`` and keep every other backslash; backticks
  are raw; an unterminated quote runs to the end of input and yields an
  unquoted token;
- ``#`` starts a comment only at the start of a token; a backslash before a
  newline (even inside a comment) continues the logical line, so the line
  number of later tokens stays put until the next real newline;
- ``<<MARKER`` + newline opens a heredoc that ends at the first occurrence of
  MARKER; the whitespace before the closing marker is stripped from every
  body line, with Caddy's error texts when that is impossible.

The scanner has fast paths for whitespace, comments and plain words; every
other token goes through `_Lexer._token`, a literal transcription of Caddy's
rune loop, so the fast paths never change a result (the property tests in
tests/caddyfile compare both paths).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from zeroserve.caddyfile.errors import CaddyfileError

# Go's unicode.IsSpace. Python's str.isspace also accepts U+001C..U+001F,
# which Go treats as ordinary characters.
_WS_CHARS = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
WHITESPACE = frozenset(_WS_CHARS)


def _char_class(chars: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in chars)


# A plain word: no whitespace except CR (which the lexer deletes), no backslash.
_PLAIN_WORD = re.compile("[^" + _char_class(_WS_CHARS.replace("\r", "") + "\\") + "]+")
_BLANK_RUN = re.compile("[" + _char_class(_WS_CHARS.replace("\n", "")) + "]+")
HEREDOC_MARKER = re.compile(r"[A-Za-z0-9_-]+\Z")


def _go_replace(err: UnicodeDecodeError) -> tuple[str, int]:
    # Go's decoder yields one RuneError per byte of an invalid sequence;
    # Python's "replace" yields one per maximal invalid subpart.
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("zeroserve-go-runes", _go_replace)


def decode_go(data: bytes) -> str:
    """Bytes to text the way Go's rune reader sees them."""
    return data.decode("utf-8", "zeroserve-go-runes")


@dataclass(slots=True)
class Token:
    """One parsable unit, as Caddy's `caddyfile.Token`.

    `was_quoted` is '' or the enclosing quote: '"', '`' or '<' (heredoc).
    `imports` is the import chain (tuple, shared between tokens; never mutate).
    """

    file: str
    line: int
    text: str
    was_quoted: str = ""
    heredoc_marker: str = ""
    imports: tuple[str, ...] = ()
    snippet_name: str = ""

    def quoted(self) -> bool:
        return self.was_quoted != ""

    def num_line_breaks(self) -> int:
        """Line breaks spanned by the token; a heredoc also spans its two marker lines."""
        breaks = self.text.count("\n")
        if self.was_quoted == "<":
            breaks += 2
        return breaks

    def clone(self) -> Token:
        return Token(
            self.file,
            self.line,
            self.text,
            self.was_quoted,
            self.heredoc_marker,
            self.imports,
            self.snippet_name,
        )


def is_next_on_new_line(t1: Token, t2: Token) -> bool:
    """Whether t2 starts on a later line than t1 ends (other file or import chain counts)."""
    if t1.file != t2.file or t1.imports != t2.imports:
        return True
    if t1.was_quoted == "<" or "\n" in t1.text:
        return t1.line + t1.num_line_breaks() < t2.line
    return t1.line < t2.line


def tokenize(body: bytes, filename: str) -> list[Token]:
    """Lex a whole Caddyfile; raises CaddyfileError with Caddy's message."""
    if not body:
        # Caddy's lexer fails to read its first rune and returns io.EOF.
        raise CaddyfileError("EOF")
    src = decode_go(body)
    if src.startswith("\ufeff"):
        src = src[1:]
    return _Lexer(src, filename).run()


class _Lexer:
    __slots__ = ("src", "file", "pos", "line", "skipped", "tokens")

    def __init__(self, src: str, filename: str) -> None:
        self.src = src
        self.file = filename
        self.pos = 0
        self.line = 1
        self.skipped = 0
        self.tokens: list[Token] = []

    def run(self) -> list[Token]:
        src = self.src
        n = len(src)
        tokens = self.tokens
        file = self.file
        plain_word = _PLAIN_WORD.match
        blank_run = _BLANK_RUN.match
        ws = WHITESPACE
        escaped = False
        pos = 0
        while pos < n:
            ch = src[pos]
            if ch == "\n":
                pos += 1
                self.newline(escaped)
                escaped = False
                continue
            if ch in ws:
                pos = blank_run(src, pos).end()
                continue
            if ch == "\\" and not escaped:
                escaped = True
                pos += 1
                continue
            if ch == "#":
                end = src.find("\n", pos)
                if end < 0:
                    end = n
                if "\\" in src[pos:end]:
                    escaped = True
                pos = end
                continue
            if not escaped and ch != '"' and ch != "`":
                m = plain_word(src, pos)
                end = m.end()
                if end == n or src[end] != "\\":
                    text = m.group()
                    if "\r" in text:
                        text = text.replace("\r", "")
                    # a word starting with "<<" may open a heredoc
                    if not text.startswith("<<"):
                        tokens.append(Token(file, self.line, text))
                        pos = end
                        continue
            self.pos = pos
            if not self._token(escaped):
                break
            pos = self.pos
            escaped = False
        return tokens

    def newline(self, escaped: bool) -> None:
        """Count a newline outside quotes; after a backslash it continues the logical line,
        so the line number only catches up at the next real newline."""
        if escaped:
            self.skipped += 1
        else:
            self.line += 1 + self.skipped
            self.skipped = 0

    def _token(self, escaped: bool) -> bool:
        """Caddy's `lexer.next` from the first rune of a token; False at end of input."""
        src = self.src
        n = len(src)
        pos = self.pos
        val: list[str] = []
        quoted = bt_quoted = heredoc_escaped = False
        start_line = self.line
        quote = ""
        while True:
            if pos >= n:
                self.pos = pos
                if not val:
                    return False
                break
            ch = src[pos]
            pos += 1
            if (
                not quoted
                and not bt_quoted
                and not heredoc_escaped
                and len(val) > 1
                and (val[0] == "<" and val[1] == "<")
            ):
                if ch == " ":
                    break
                if ch == "\r":
                    continue
                if ch == "\n":
                    self.pos = pos
                    return self._heredoc(val, start_line)
                val.append(ch)
                continue
            if not escaped and not bt_quoted and ch == "\\":
                escaped = True
                continue
            if quoted or bt_quoted:
                if quoted and escaped:
                    if ch != '"':
                        val.append("\\")
                    escaped = False
                elif (quoted and ch == '"') or (bt_quoted and ch == "`"):
                    quote = ch
                    break
                if ch == "\n":
                    self.line += 1 + self.skipped
                    self.skipped = 0
                val.append(ch)
                continue
            if ch in WHITESPACE:
                if ch == "\r":
                    continue
                if ch == "\n":
                    self.newline(escaped)
                    escaped = False
                if val:
                    break
                continue
            if not val:
                if ch == '"':
                    quoted = True
                    continue
                if ch == "`":
                    bt_quoted = True
                    continue
            if escaped:
                if ch == "<":
                    heredoc_escaped = True
                else:
                    val.append("\\")
                escaped = False
            val.append(ch)
        self.pos = pos
        self.tokens.append(Token(self.file, start_line, "".join(val), quote))
        return True

    def _heredoc(self, opener: list[str], start_line: int) -> bool:
        """Read a heredoc body after its opening line (self.pos is just past the newline)."""
        if len(opener) == 2:
            raise CaddyfileError(
                f"missing opening heredoc marker on line #{self.line}; must contain only "
                "alphanumeric characters, dashes and underscores; got empty string"
            )
        if opener[2] == "<":
            raise CaddyfileError(
                f"too many '<' for heredoc on line #{self.line}; only use two, for example <<END"
            )
        marker = "".join(opener[2:])
        if not HEREDOC_MARKER.match(marker):
            raise CaddyfileError(
                f"heredoc marker on line #{self.line} must contain only alphanumeric "
                f"characters, dashes and underscores; got '{marker}'"
            )
        self.skipped += 1
        src = self.src
        start = self.pos
        found = src.find(marker, start)
        if found < 0:
            self.pos = len(src)
            if start == len(src):
                return False
            missing_line = self.line + self.skipped + src.count("\n", start)
            raise CaddyfileError(
                f"incomplete heredoc <<{marker} on line #{missing_line}, "
                f"expected ending marker {marker}"
            )
        end = found + len(marker)
        self.skipped += src.count("\n", start, end)
        text = self._strip_heredoc(src[start:found], marker)
        self.line += self.skipped
        self.skipped = 0
        self.pos = end
        self.tokens.append(Token(self.file, start_line, text, "<", marker))
        return True

    def _strip_heredoc(self, body: str, marker: str) -> str:
        """Remove the closing marker's indentation from every line (Caddy's finalizeHeredoc)."""
        last_newline = body.rfind("\n")
        padding = body[last_newline + 1 :]
        lines = body[: last_newline + 1].split("\n")[:-1]
        out: list[str] = []
        for number, line_text in enumerate(lines):
            if line_text == "" or line_text == "\r":
                out.append("")
                continue
            if not line_text.startswith(padding):
                raise CaddyfileError(
                    f"mismatched leading whitespace in heredoc <<{marker} on line "
                    f"#{self.line + number + 1} [{line_text}], expected whitespace "
                    f"[{padding}] to match the closing marker"
                )
            out.append(line_text[len(padding) :].replace("\r", ""))
        return "\n".join(out)
