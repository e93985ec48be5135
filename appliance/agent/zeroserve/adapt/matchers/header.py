"""The `header` request matcher (`http.matchers.header`, Caddy's modules/caddyhttp/matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.adapt.values import canonical_header_key
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


@matcher("header")
def unmarshal_header(d: Dispenser, name: str) -> GoMap:
    """Syntax::

        header <field> <value>
        header !<field>

    Values of a repeated field are ORed; `!field` requires the field to be absent.
    """
    headers = GoMap()
    unmarshal_header_into(d, headers)
    return headers


def unmarshal_header_into(d: Dispenser, headers: GoMap) -> None:
    """Add the header conditions in `d` to `headers` (shared with response matchers)."""
    while d.next():
        if not d.next_arg():
            raise d.err("malformed header matcher: expected field")
        field = d.val()
        if field.startswith("!"):
            if len(field) == 1:
                raise d.err("malformed header matcher: must have field name following ! character")
            # an absent-header condition keeps the field as written (no canonicalisation)
            headers[field[1:]] = None
            if d.next_arg():
                raise d.err(
                    "malformed header matcher: null matching headers cannot have a field value"
                )
        else:
            if not d.next_arg():
                raise d.err("malformed header matcher: expected both field and value")
            key = canonical_header_key(field)
            values = headers.get(key) or []
            values.append(d.val())
            headers[key] = values
        if d.next_block(0):
            raise d.err("malformed header matcher: blocks are not supported")
