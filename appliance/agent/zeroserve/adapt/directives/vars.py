"""`vars`: the `vars` handler, which sets request variables (modules/caddyhttp/vars.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive


@handler_directive("vars")
def parse_vars(h: Helper) -> dict:
    """Syntax::

        vars [<matcher>] [<name> <value>] {
            <name> <value>
            ...
        }

    Unquoted values become numbers or booleans when they parse as such.
    """
    h.next()
    out: dict = {}

    def next_var(header_line: bool) -> None:
        # the name/value pair on the directive's own line is optional
        if header_line and not h.next_arg():
            return
        name = h.val()
        if not h.next_arg():
            raise h.arg_err()
        out[name] = h.scalar()
        if h.next_arg():
            raise h.arg_err()

    next_var(True)
    while h.next_block(0):
        next_var(False)
    # a variable called "handler" loses to the module name, as in Caddy
    return {**out, "handler": "vars"}
