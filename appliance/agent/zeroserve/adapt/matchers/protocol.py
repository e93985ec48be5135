"""The `protocol` request matcher (`http.matchers.protocol`, modules/caddyhttp/matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("protocol")
def unmarshal_protocol(d: Dispenser, name: str) -> str:
    """Syntax::

        protocol http|https|grpc|http/<version>[+]

    The last occurrence in a set wins.
    """
    proto = ""
    while d.next():
        if not d.next_arg():
            raise d.err("expected exactly one protocol")
        proto = d.val()
    return proto
