"""`templates`: the `templates` handler (modules/caddyhttp/templates/caddyfile.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.modules import unmarshal_module
from zeroserve.adapt.registry import handler_directive

# stock Caddy ships no http.handlers.templates.functions.* modules
_FUNCTION_MODULES: dict = {}


@handler_directive("templates")
def parse_templates(h: Helper) -> dict:
    """Syntax::

        templates [<matcher>] {
            mime <types...>
            between <open_delim> <close_delim>
            root <path>
            extensions {
                <module> ...
            }
        }

    Unknown subdirectives are ignored, as in Caddy.
    """
    h.next()
    out: dict = {"handler": "templates"}
    while h.next_block(0):
        sub = h.val()
        if sub == "mime":
            types = h.remaining_args()
            if not types:
                raise h.arg_err()
            out["mime_types"] = types
        elif sub == "between":
            delims = h.remaining_args()
            if len(delims) != 2:
                raise h.arg_err()
            out["delimiters"] = delims
        elif sub == "root":
            if not h.next_arg():
                raise h.arg_err()
            if h.val():
                out["file_root"] = h.val()
            else:
                out.pop("file_root", None)
        elif sub == "extensions":
            if h.next_arg():
                raise h.arg_err()
            nesting = h.nesting()
            while h.next_block(nesting):
                unmarshal_module(
                    h.dispenser, "http.handlers.templates.functions", _FUNCTION_MODULES
                )
    return out
