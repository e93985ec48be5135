"""`error`: the `error` handler, which raises an HTTP error (modules/caddyhttp/staticerror.go)."""

from __future__ import annotations

from zeroserve.adapt.directives.respond import status_or_text
from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import weak_string


@handler_directive("error")
def parse_error(h: Helper) -> dict:
    """Syntax::

    error [<matcher>] <status>|<message> [<status>] {
        message <text>
    }
    """
    h.next()
    args = h.remaining_args()
    if len(args) not in (1, 2):
        raise h.arg_err()
    message, status = status_or_text(args)
    while h.next_block(0):
        if h.val() != "message":
            raise h.errf("unrecognized subdirective '%s'", h.val())
        if message:
            raise h.err("message already specified")
        only = h.all_args(1)
        if only is None:
            raise h.arg_err()
        message = only[0]
    out: dict = {"handler": "error"}
    if message:
        out["error"] = message
    if status:
        out["status_code"] = weak_string(status)
    return out
