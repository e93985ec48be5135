"""The token cursor that directive code walks: Caddy's `caddyfile.Dispenser`.

Method for method the same as Caddy v2.11.7 (snake_case), including its
error texts, which carry the token's file, line and import chain:

    wrong argument count or unexpected line ending after 'x', at Caddyfile:3
    syntax error: unexpected token 'x', expecting '}', at Caddyfile:2 import chain: ['']

The cursor starts before the first token (-1); `next()` must be called first.
"""

from __future__ import annotations

from typing import Any

from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyfile.gofmt import go_scalar, go_sprintf
from zeroserve.caddyfile.lexer import Token, is_next_on_new_line, tokenize

_EMPTY = Token("", 0, "")


class Dispenser:
    """Dispenses tokens with some notion of lines and blocks."""

    __slots__ = ("tokens", "cursor", "_nesting", "context")

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.cursor = -1
        self._nesting = 0
        self.context: dict[str, Any] = {}

    @classmethod
    def from_text(cls, text: str, filename: str = "Testfile") -> Dispenser:
        """Caddy's NewTestDispenser: lex `text` (with {$ENV} expansion) into a dispenser."""
        from zeroserve.caddyfile.parser import replace_env_vars

        body = replace_env_vars(text.encode())
        return cls(tokenize(body, filename) if body else [])

    # --- moving -----------------------------------------------------------

    def next(self) -> bool:
        """Load the next token; False when all tokens are consumed."""
        if self.cursor < len(self.tokens) - 1:
            self.cursor += 1
            return True
        return False

    def prev(self) -> bool:
        """Move back one token (possibly to -1); True if the cursor is on a token."""
        if self.cursor > -1:
            self.cursor -= 1
            return self.cursor > -1
        return False

    def next_arg(self) -> bool:
        """Load the next token if it is on the same line and is not a block opening."""
        if not self._next_on_same_line():
            return False
        if self._is_brace("{"):
            self.cursor -= 1
            return False
        return True

    def _is_brace(self, brace: str) -> bool:
        """Whether the current token is `brace` as structure (a quoted brace is text)."""
        if 0 <= self.cursor < len(self.tokens):
            token = self.tokens[self.cursor]
            return token.text == brace and not token.was_quoted
        return False

    def _next_on_same_line(self) -> bool:
        return self._next_if_new_line(False)

    def next_line(self) -> bool:
        """Load the next token only if it is on a later line than the current one."""
        return self._next_if_new_line(True)

    def _next_if_new_line(self, new_line: bool) -> bool:
        """Load the next token if whether it starts a later line is `new_line`."""
        cursor = self.cursor
        if cursor < 0:
            self.cursor = cursor + 1
            return True
        tokens = self.tokens
        if cursor >= len(tokens) - 1:
            return False
        if is_next_on_new_line(tokens[cursor], tokens[cursor + 1]) == new_line:
            self.cursor = cursor + 1
            return True
        return False

    def next_block(self, initial_nesting_level: int) -> bool:
        """Loop condition over the tokens of the block opening at the end of this line.

        Use as ``nesting = d.nesting(); while d.next_block(nesting): ...``. The
        outer braces are consumed and not yielded.
        """
        if self._nesting > initial_nesting_level:
            if not self.next():
                return False
            if self._is_brace("}") and not self._next_on_same_line():
                self._nesting -= 1
            elif self._is_brace("{") and not self._next_on_same_line():
                self._nesting += 1
            return self._nesting > initial_nesting_level
        if not self._next_on_same_line():
            return False
        if not self._is_brace("{"):
            self.cursor -= 1
            return False
        self.next()
        if self._is_brace("}"):
            return False
        self._nesting += 1
        return True

    def nesting(self) -> int:
        """The current nesting level, for `next_block`."""
        return self._nesting

    # --- reading ----------------------------------------------------------

    def val(self) -> str:
        """Text of the current token, or '' if none is loaded."""
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor].text
        return ""

    def val_raw(self) -> str:
        """Text of the current token with its quotes (heredoc markers excluded)."""
        if 0 <= self.cursor < len(self.tokens):
            token = self.tokens[self.cursor]
            quote = token.was_quoted
            if quote and quote != "<":
                return quote + token.text + quote
            return token.text
        return ""

    def scalar(self) -> int | float | bool | str | None:
        """Current token converted to the closest scalar type (Caddy's ScalarVal)."""
        if not 0 <= self.cursor < len(self.tokens):
            return None
        token = self.tokens[self.cursor]
        if token.was_quoted:
            return token.text
        return go_scalar(token.text)

    def line(self) -> int:
        """Line of the current token, or 0."""
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor].line
        return 0

    def file(self) -> str:
        """File of the current token, or ''."""
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor].file
        return ""

    def token(self) -> Token:
        """The current token (an empty one if none is loaded)."""
        if 0 <= self.cursor < len(self.tokens):
            return self.tokens[self.cursor]
        return _EMPTY

    def is_quoted(self) -> bool:
        return self.token().quoted()

    def args(self, count: int) -> list[str] | None:
        """Caddy's Args with `count` targets: the next `count` arguments, or None if fewer.

        Like Caddy, the arguments read before running short stay consumed.
        """
        out: list[str] = []
        for _ in range(count):
            if not self.next_arg():
                return None
            out.append(self.val())
        return out

    def all_args(self, count: int) -> list[str] | None:
        """Like `args`, but None also when more arguments follow."""
        out = self.args(count)
        if out is None:
            return None
        if self.next_arg():
            self.prev()
            return None
        return out

    def count_remaining_args(self) -> int:
        """Number of arguments left on the line, without consuming them."""
        count = 0
        while self.next_arg():
            count += 1
        for _ in range(count):
            self.prev()
        return count

    def remaining_args(self) -> list[str]:
        """Consume and return the rest of the line's arguments (not a block opening)."""
        args: list[str] = []
        while self.next_arg():
            args.append(self.tokens[self.cursor].text)
        return args

    def remaining_args_raw(self) -> list[str]:
        """Like `remaining_args`, keeping quotes."""
        args: list[str] = []
        while self.next_arg():
            args.append(self.val_raw())
        return args

    def remaining_args_as_tokens(self) -> list[Token]:
        """Like `remaining_args`, returning the tokens."""
        args: list[Token] = []
        while self.next_arg():
            args.append(self.tokens[self.cursor])
        return args

    def new_from_next_segment(self) -> Dispenser:
        """A new dispenser over `next_segment()`."""
        return Dispenser(self.next_segment())

    def next_segment(self) -> list[Token]:
        """Tokens from the current one to the end of its line or of the block it opens."""
        tokens = [self.token()]
        while self.next_arg():
            tokens.append(self.tokens[self.cursor])
        opened_block = False
        nesting = self._nesting
        while self.next_block(nesting):
            if not opened_block:
                # next_block consumed the opening brace; the segment keeps it
                self.prev()
                tokens.append(self.token())
                self.next()
                opened_block = True
            tokens.append(self.token())
        if opened_block:
            # the closing brace, left unconsumed for the enclosing loop
            tokens.append(self.token())
        return tokens

    def reset(self) -> None:
        """Back to the beginning, as if new."""
        self.cursor = -1
        self._nesting = 0

    def delete(self) -> list[Token]:
        """Delete the current token (cursor steps back); returns the token list."""
        if 0 <= self.cursor <= len(self.tokens) - 1:
            del self.tokens[self.cursor]
            self.cursor -= 1
        return self.tokens

    def delete_n(self, amount: int) -> list[Token]:
        """Delete the current token and the amount-1 before it, if they all exist."""
        if amount > 0 and self.cursor >= amount - 1 and self.cursor <= len(self.tokens) - 1:
            del self.tokens[self.cursor - (amount - 1) : self.cursor + 1]
            self.cursor -= amount
        return self.tokens

    def set_context(self, key: str, value: Any) -> None:  # noqa: ANN401 - arbitrary payload
        self.context[key] = value

    def get_context(self, key: str) -> Any:  # noqa: ANN401 - arbitrary payload
        return self.context.get(key)

    def get_context_string(self, key: str) -> str:
        value = self.context.get(key)
        return value if isinstance(value, str) else ""

    # --- line tests used by the parser ----------------------------------------

    def is_new_line(self) -> bool:
        """Whether the current token is on a later line than the previous one."""
        cursor = self.cursor
        if cursor < 1:
            return True
        if cursor > len(self.tokens) - 1:
            return False
        return is_next_on_new_line(self.tokens[cursor - 1], self.tokens[cursor])

    def is_next_on_new_line(self) -> bool:
        """Whether the next token is on a later line than the current one."""
        cursor = self.cursor
        if cursor < 0:
            return False
        if cursor >= len(self.tokens) - 1:
            return True
        return is_next_on_new_line(self.tokens[cursor], self.tokens[cursor + 1])

    # --- errors -------------------------------------------------------------

    def arg_err(self) -> CaddyfileError:
        """Another argument was expected (a line end or '{' came instead)."""
        if self._is_brace("{"):
            return self.err("unexpected token '{', expecting argument")
        return self.err(f"wrong argument count or unexpected line ending after '{self.val()}'")

    def syntax_err(self, expected: str) -> CaddyfileError:
        """What was found and what was expected."""
        chain = "','".join(self.token().imports)
        return CaddyfileError(
            f"syntax error: unexpected token '{self.val()}', expecting '{expected}', "
            f"at {self.file()}:{self.line()} import chain: ['{chain}']"
        )

    def eof_err(self) -> CaddyfileError:
        """The input ended while looking for the next token."""
        return self.err("unexpected EOF")

    def err(self, msg: str) -> CaddyfileError:
        """A parse error with `msg`, located at the current token."""
        return self.wrap_err(msg)

    def errf(self, fmt: str, *args: object) -> CaddyfileError:
        """Like `err`, with a Go format string (%s, %v, %d, %q, %%)."""
        return self.wrap_err(go_sprintf(fmt, *args))

    def wrap_err(self, exc: BaseException | str) -> CaddyfileError:
        """Add the current file, line and import chain to an error."""
        imports = self.token().imports
        if imports:
            chain = "','".join(imports)
            return CaddyfileError(f"{exc}, at {self.file()}:{self.line()} import chain ['{chain}']")
        return CaddyfileError(f"{exc}, at {self.file()}:{self.line()}")
