"""The `query` request matcher (`http.matchers.query`, Caddy's modules/caddyhttp/matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


@matcher("query")
def unmarshal_query(d: Dispenser, name: str) -> GoMap:
    """Syntax::

        query <key>=<val>...

    Values of a repeated key accumulate (url.Values.Add); an empty matcher matches
    only a request without a query string.
    """
    query = GoMap()
    while d.next():
        for arg in d.remaining_args():
            if arg == "":
                continue
            key, sep, value = arg.partition("=")
            if not sep:
                raise d.err(
                    f"malformed query matcher token: {d.val()}; must be in param=val format"
                )
            query.setdefault(key, []).append(value)
        if d.next_block(0):
            raise d.err("malformed query matcher: blocks are not supported")
    return query
