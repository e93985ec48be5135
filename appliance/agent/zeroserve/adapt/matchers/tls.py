"""The `tls` request matcher (`http.matchers.tls`, Caddy's modules/caddyhttp/matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser


@matcher("tls")
def unmarshal_tls(d: Dispenser, name: str) -> dict:
    """Syntax::

        tls [early_data]

    `early_data` matches only requests whose TLS handshake has not completed yet.
    """
    out: dict = {}
    while d.next():
        if d.next_arg():
            if d.val() != "early_data":
                raise d.errf("unrecognized option '%s'", d.val())
            out["handshake_complete"] = False
        if d.next_arg():
            raise d.arg_err()
        if d.next_block(0):
            raise d.err("malformed tls matcher: blocks are not supported yet")
    return out
