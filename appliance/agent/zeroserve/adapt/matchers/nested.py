"""Nested matcher sets and the `not` request matcher (Caddy's modules/caddyhttp/matchers.go).

`parse_nested_matcher_set` is Caddy's `ParseCaddyfileNestedMatcherSet`: the
matchers on the rest of the current line and in the following block, parsed into
one set, where a quoted token stands for an `expression` matcher. It serves `not`,
and `reverse_proxy`'s `lb_retry_match`.
"""

from __future__ import annotations

import dataclasses

from zeroserve.adapt import registry
from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.lexer import Token
from zeroserve.caddyjson import GoMap


def parse_nested_matcher_set(d: Dispenser) -> GoMap:
    """The matcher set written after the current token (same line, then its block)."""
    by_name: dict[str, list[Token]] = {}
    nesting = d.nesting()
    while d.next_arg() or d.next_block(nesting):
        tok = d.token()
        if tok.was_quoted:
            # a quoted token where a matcher name belongs is a CEL expression
            by_name.setdefault("expression", []).extend(
                [dataclasses.replace(tok, text="expression"), tok]
            )
            continue
        by_name.setdefault(d.val(), []).extend(d.next_segment())
    matcher_set = GoMap()
    for matcher_name, tokens in by_name.items():
        fn = registry.matchers.get(matcher_name)
        if fn is None:
            raise d.err(
                f"getting matcher module '{matcher_name}': "
                f"module not registered: http.matchers.{matcher_name}"
            )
        # nested matchers get no matcher name, so their regexps stay unnamed
        matcher_set[matcher_name] = fn(Dispenser(tokens), "")
    return matcher_set


@matcher("not")
def unmarshal_not(d: Dispenser, name: str) -> list[GoMap]:
    """Syntax::

        not <matcher> [<args...>]
        not {
            <matchers...>
        }

    Each occurrence is one negated set; the request matches when none of them does.
    """
    sets: list[GoMap] = []
    while d.next():
        sets.append(parse_nested_matcher_set(d))
    return sets
