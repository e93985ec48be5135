"""The `vars` request matcher (`http.matchers.vars`, Caddy's modules/caddyhttp/vars.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


@matcher("vars")
def unmarshal_vars(d: Dispenser, name: str) -> GoMap:
    """Syntax::

    vars <variable|{placeholder}> <values...>
    """
    out = GoMap()
    while d.next():
        if not d.next_arg():
            raise d.err("malformed vars matcher: expected field name")
        field = d.val()
        values = d.remaining_args()
        if not values:
            raise d.err("malformed vars matcher: expected at least one value to match against")
        out.setdefault(field, []).extend(values)
        if d.next_block(0):
            raise d.err("malformed vars matcher: blocks are not supported")
    return out
