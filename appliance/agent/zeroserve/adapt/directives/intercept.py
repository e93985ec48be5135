"""`intercept`: the `intercept` handler (modules/caddyhttp/intercept/intercept.go)."""

from __future__ import annotations

from zeroserve.adapt.directives.response_handlers import ResponseHandling
from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive


@handler_directive("intercept")
def parse_intercept(h: Helper) -> dict:
    """Syntax::

    intercept [<matcher>] {
        @name {
            status <code...>
            header <field> [<value>]
        }
        replace_status [<matcher>] <status_code>
        handle_response [<matcher>] {
            <directives...>
        }
    }
    """
    responses = ResponseHandling()
    h.next()
    while h.next_block(0):
        if not responses.parse(h.dispenser):
            raise h.errf("unrecognized subdirective %s", h.val())
    out: dict = {"handler": "intercept"}
    handlers = responses.finalize(h)
    if handlers:
        out["handle_response"] = handlers
    return out
