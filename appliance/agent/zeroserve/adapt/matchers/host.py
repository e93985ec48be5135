"""The `host` request matcher (`http.matchers.host`, Caddy's modules/caddyhttp/matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("host")
def unmarshal_host(d: Dispenser, name: str) -> list[str] | None:
    """Syntax::

        host <hosts...>

    Every occurrence in one set adds to the same list.
    """
    hosts: list[str] = []
    while d.next():
        hosts.extend(d.remaining_args())
        if d.next_block(0):
            raise d.err("malformed host matcher: blocks are not supported")
    # a matcher without values is a nil slice, which Go encodes as null
    return hosts or None
