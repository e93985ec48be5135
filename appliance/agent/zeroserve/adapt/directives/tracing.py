"""`tracing`: the OpenTelemetry `tracing` handler (modules/caddyhttp/tracing/module.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.caddyjson import GoMap


@handler_directive("tracing")
def parse_tracing(h: Helper) -> dict:
    """Syntax::

    tracing [<matcher>] {
        span <span_name>
        span_attributes {
            <attr> <value>
        }
    }
    """
    h.next()
    if h.next_arg():
        raise h.arg_err()
    # the span name is not omitempty
    out: dict = {"handler": "tracing", "span": ""}
    attributes = GoMap()
    while h.next_block(0):
        sub = h.val()
        if sub == "span":
            if not h.next_arg():
                raise h.arg_err()
            out["span"] = h.val()
            if h.next_arg():
                raise h.arg_err()
        elif sub == "span_attributes":
            while h.next_block(1):
                key = h.val()
                if not h.next_arg():
                    raise h.arg_err()
                attributes[key] = h.val()
                if h.next_arg():
                    raise h.arg_err()
        else:
            raise h.arg_err()
    if attributes:
        out["span_attributes"] = attributes
    return out
