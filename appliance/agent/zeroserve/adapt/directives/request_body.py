"""`request_body`: the `request_body` handler (modules/caddyhttp/requestbody/caddyfile.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import int64, parse_bytes


@handler_directive("request_body")
def parse_request_body(h: Helper) -> dict:
    """Syntax::

    request_body [<matcher>] {
        max_size <size>
        set      <body>
    }
    """
    h.next()
    out: dict = {"handler": "request_body"}
    while h.next_block(0):
        sub = h.val()
        if sub == "max_size":
            only = h.all_args(1)
            if only is None:
                raise h.arg_err()
            try:
                size = int64(parse_bytes(only[0]))
            except ValueError as exc:
                raise h.errf("parsing max_size: %v", exc) from None
            if size:
                out["max_size"] = size
            else:
                out.pop("max_size", None)
        elif sub == "set":
            only = h.all_args(1)
            if only is None:
                raise h.arg_err()
            if only[0]:
                out["set"] = only[0]
            else:
                out.pop("set", None)
        else:
            raise h.errf("unrecognized request_body subdirective '%s'", sub)
    return out
