"""The `timeouts` directive (http.handlers.timeouts).

Syntax::

    timeouts [<matcher>] {
        read_timeout  <duration> [<min_rate>]
        write_timeout <duration> [<min_rate>]
        max_write_chunk <size>
    }
"""

from __future__ import annotations

import re

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import parse_bytes, parse_duration
from zeroserve.caddyfile.gofmt import go_quote

_INT64 = re.compile(r"[+-]?[0-9]+")


def _parse_int(text: str) -> int:
    """strconv.ParseInt(text, 10, 64)."""
    if not _INT64.fullmatch(text):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


@handler_directive("timeouts")
def parse_timeouts(h: Helper) -> dict:
    handler: dict = {"handler": "timeouts"}
    h.next()
    while h.next_block(0):
        sub = h.val()
        if sub in ("read_timeout", "write_timeout"):
            if not h.next_arg():
                raise h.arg_err()
            try:
                handler[sub] = parse_duration(h.val())
            except ValueError as exc:
                raise h.errf("parsing %s: %s", sub, str(exc)) from None
            if h.next_arg():
                try:
                    handler[sub.split("_")[0] + "_min_rate"] = _parse_int(h.val())
                except ValueError as exc:
                    raise h.errf("parsing %s min_rate: %s", sub, str(exc)) from None
                if h.next_arg():
                    raise h.arg_err()
        elif sub == "max_write_chunk":
            if not h.next_arg():
                raise h.arg_err()
            try:
                handler["max_write_chunk"] = parse_bytes(h.val())
            except ValueError as exc:
                raise h.errf("parsing max_write_chunk: %s", str(exc)) from None
        else:
            raise h.errf("unrecognized timeouts subdirective '%s'", sub)
    return handler
