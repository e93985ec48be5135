"""`encode`: the `encode` handler and its encoders (modules/caddyhttp/encode/).

The encoders are the `http.encoders.*` modules of a stock Caddy: gzip and zstd.
"""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.matchers.response import parse_named_response_matcher
from zeroserve.adapt.modules import unmarshal_module
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import atoi
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import GoMap

_ZSTD_LEVELS = ("fastest", "better", "best", "default")


def _gzip(d: Dispenser) -> dict:
    """Syntax::

    gzip [<level>]
    """
    d.next()
    if not d.next_arg():
        return {}
    try:
        level = atoi(d.val())
    except ValueError as exc:
        # Caddy returns the strconv error bare, without a location
        raise CaddyfileError(str(exc)) from None
    return {"level": level} if level else {}


def _zstd(d: Dispenser) -> dict:
    """Syntax::

    zstd [<level>] {
        level <fastest|better|best|default>
        disable_checksum
    }
    """
    d.next()
    out: dict = {}
    level_err = "unexpected compression level, use one of " + ", ".join(
        f"'{lv}'" for lv in _ZSTD_LEVELS
    )
    args = d.remaining_args()
    if len(args) == 1:
        if args[0] not in _ZSTD_LEVELS:
            raise d.err(level_err)
        out["level"] = args[0]
    elif args:
        raise d.arg_err()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "level":
            args = d.remaining_args()
            if len(args) != 1:
                raise d.arg_err()
            if "level" in out:
                raise d.err("compression level already specified")
            if args[0] not in _ZSTD_LEVELS:
                raise d.err(level_err)
            out["level"] = args[0]
        elif sub == "disable_checksum":
            if d.next_arg():
                raise d.arg_err()
            if "checksum" in out:
                raise d.err("checksum already specified")
            out["checksum"] = False
        else:
            raise d.errf("unknown subdirective '%s'", sub)
    return out


ENCODERS = {"gzip": _gzip, "zstd": _zstd}


@handler_directive("encode")
def parse_encode(h: Helper) -> dict:
    """Syntax::

        encode [<matcher>] [<formats...>] {
            gzip           [<level>]
            zstd           [<level>]
            minimum_length <length>
            match {
                status <code...>
                header <field> [<value>]
            }
        }

    Formats on the first line use their defaults; without any, zstd and gzip.
    """
    h.next()
    encodings = GoMap()
    prefer: list[str] = []
    args = h.remaining_args()
    out: dict = {"handler": "encode"}
    response_matchers: dict[str, dict] = {}
    while h.next_block(0):
        sub = h.val()
        if sub == "minimum_length":
            if not h.next_arg():
                raise h.arg_err()
            try:
                min_length = atoi(h.val())
            except ValueError as exc:
                raise CaddyfileError(str(exc)) from None
            if min_length:
                out["minimum_length"] = min_length
            else:
                out.pop("minimum_length", None)
        elif sub == "match":
            parse_named_response_matcher(h.new_from_next_segment(), response_matchers)
            out["match"] = response_matchers["match"]
        else:
            encodings[sub] = unmarshal_module(h.dispenser, "http.encoders", ENCODERS)
            prefer.append(sub)
    if not prefer and not args:
        args = ["zstd", "gzip"]
    for arg in args:
        if arg not in ENCODERS:
            raise h.errf("finding encoder module '': module not registered: http.encoders.%s", arg)
        encodings[arg] = {}
        prefer.append(arg)
    if encodings:
        out["encodings"] = encodings
    if prefer:
        out["prefer"] = prefer
    return out
