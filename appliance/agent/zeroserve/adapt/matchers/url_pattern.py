"""The `url_pattern` request matcher (`http.matchers.url_pattern`, modules/caddyhttp)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("url_pattern")
def unmarshal_url_pattern(d: Dispenser, name: str) -> dict:
    """Syntax::

    url_pattern <pattern> {
        base_url    <url>
        ignore_case
    }
    """
    pattern = base_url = ""
    ignore_case = False
    while d.next():
        if not d.next_arg():
            raise d.err("expected exactly one URL pattern")
        pattern = d.val()
        while d.next_block(0):
            sub = d.val()
            if sub == "base_url":
                if not d.next_arg():
                    raise d.arg_err()
                base_url = d.val()
            elif sub == "ignore_case":
                if d.next_arg():
                    raise d.arg_err()
                ignore_case = True
            else:
                raise d.err(f"unrecognized url_pattern option '{sub}'")
    out: dict = {"pattern": pattern} if pattern else {}
    if base_url:
        out["base_url"] = base_url
    if ignore_case:
        out["ignore_case"] = True
    return out
