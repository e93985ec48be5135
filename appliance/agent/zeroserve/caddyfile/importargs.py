"""Import arguments: ``{args[N]}`` and ``{args[a:b]}`` in imported tokens.

Mirrors Caddy v2.11.7 `importargs.go` and the `ReplaceKnown` scan of
`caddy.Replacer` it relies on: ``\\{`` and ``\\}`` lose their backslash, unknown
placeholders are kept verbatim, ``{args.N}`` still works (deprecated), and a
problem is a logged warning that leaves the placeholder as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyfile.gofmt import go_atoi
from zeroserve.caddyfile.lexer import Token

# caddy.Log().Named("caddyfile"); zeroserve.adapt.adaptlog shows these as Caddy does
log = logging.getLogger("caddy.caddyfile")

_ARGS_DEPRECATED = re.compile(r"args\.(.+)")
_ARGS_INDEX = re.compile(r"args\[(.+)]")


def parse_variadic(token: Token, arg_count: int) -> tuple[int, int] | None:
    """The arg range of a token that is exactly ``{args[start:end]}``, else None."""
    text = token.text
    if not text.startswith("{args[") or not text.endswith("]}"):
        return None
    arg_range = text[6:-2]
    where = f"{token.file}:{token.line}"
    if arg_range == "":
        log.warning("Placeholder %s cannot have an empty index (%s)", text, where)
        return None
    start, colon, end = arg_range.partition(":")
    if not colon:
        return None
    start_index, end_index = 0, arg_count
    if start:
        parsed = go_atoi(start)
        if parsed is None:
            log.warning("Variadic placeholder %s has an invalid start index (%s)", text, where)
            return None
        start_index = parsed
    if end:
        parsed = go_atoi(end)
        if parsed is None:
            log.warning("Variadic placeholder %s has an invalid end index (%s)", text, where)
            return None
        end_index = parsed
    if start_index < 0 or start_index > end_index or end_index > arg_count:
        log.warning(
            "Variadic placeholder %s indices are out of bounds, only %d argument(s) exist (%s)",
            text,
            arg_count,
            where,
        )
        return None
    return start_index, end_index


def _lookup(key: str, args: list[str]) -> str | None:
    m = _ARGS_DEPRECATED.search(key)
    if m:
        return _indexed_arg(args, m.group(1), deprecated=True)
    m = _ARGS_INDEX.search(key)
    if m:
        if ":" in m.group(1):
            log.warning("Variadic placeholder {args[%s]} must be a token on its own", m.group(1))
            return None
        return _indexed_arg(args, m.group(1), deprecated=False)
    return None


def _indexed_arg(args: list[str], raw: str, deprecated: bool) -> str | None:
    """The argument `raw` indexes, or None (with Caddy's warning) when there is none."""
    placeholder = f"{{args.{raw}}}" if deprecated else f"{{args[{raw}]}}"
    index = go_atoi(raw)
    if index is None:
        log.warning("Placeholder %s has an invalid index", placeholder)
        return None
    if index >= len(args):
        log.warning(
            "Placeholder %s index is out of bounds, only %d argument(s) exist",
            placeholder,
            len(args),
        )
        return None
    if deprecated:
        log.warning("Placeholder %s deprecated, use {args[%s]} instead", placeholder, raw)
    return _arg(args, index)


def _arg(args: list[str], index: int) -> str:
    if index < 0:
        # Go indexes args[-1] and panics; refuse instead of wrapping around
        raise CaddyfileError(f"runtime error: index out of range [{index}]")
    return args[index]


def make_replacer(args: list[str]) -> Callable[[str], str]:
    """Caddy's ``makeArgsReplacer(args).ReplaceKnown(text, "")``."""

    def replace(text: str) -> str:
        return replace_known(text, lambda key: _lookup(key, args))

    return replace


def replace_known(text: str, lookup: Callable[[str], str | None]) -> str:
    """`caddy.Replacer.ReplaceKnown` with an empty default: known ``{key}`` replaced."""
    if "{" not in text:
        return text
    out: list[str] = []
    last = 0
    unclosed = 0
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        if i > 0 and text[i - 1] == "\\" and (ch == "}" or ch == "{"):
            out.append(text[last : i - 1])
            last = i
            i += 1
            continue
        if ch != "{":
            i += 1
            continue
        if unclosed > 100:
            # Caddy's replacer gives up ("too many unclosed placeholders") and
            # ReplaceKnown returns its empty result
            return ""
        end = text.find("}", i)
        if end < 0:
            unclosed += 1
            i += 1
            continue
        closed = True
        while 0 < end < n - 1 and text[end - 1] == "\\":
            following = text.find("}", end + 1)
            if following < 0:
                unclosed += 1
                closed = False
                break
            end = following
        if not closed:
            i += 1
            continue
        out.append(text[last:i])
        value = lookup(text[i + 1 : end])
        if value is None:
            last = i
            i += 1
            continue
        out.append(value)
        i = end + 1
        last = i
    out.append(text[last:])
    return "".join(out)
