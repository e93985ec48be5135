"""The `method` request matcher (`http.matchers.method`, Caddy's modules/caddyhttp/matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("method")
def unmarshal_method(d: Dispenser, name: str) -> list[str] | None:
    """Syntax::

        method <verbs...>

    Every occurrence in one set adds to the same list.
    """
    methods: list[str] = []
    while d.next():
        methods.extend(d.remaining_args())
        if d.next_block(0):
            raise d.err("malformed method matcher: blocks are not supported")
    # a matcher without values is a nil slice, which Go encodes as null
    return methods or None
