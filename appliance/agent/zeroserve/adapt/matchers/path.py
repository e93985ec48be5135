"""The `path` request matcher (`http.matchers.path`, Caddy's modules/caddyhttp/matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("path")
def unmarshal_path(d: Dispenser, name: str) -> list[str] | None:
    """Syntax::

        path <paths...>

    Every occurrence in one set adds to the same list.
    """
    paths: list[str] = []
    while d.next():
        paths.extend(d.remaining_args())
        if d.next_block(0):
            raise d.err("malformed path matcher: blocks are not supported")
    # a matcher without values is a nil slice, which Go encodes as null
    return paths or None
