"""`push`: the HTTP/2 server `push` handler (modules/caddyhttp/push/caddyfile.go)."""

from __future__ import annotations

from zeroserve.adapt.directives.header import HeaderOps, apply_header_op
from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive


@handler_directive("push")
def parse_push(h: Helper) -> dict:
    """Syntax::

    push [<matcher>] [<resource>] {
        [GET|HEAD] <resource>
        headers {
            [+]<field> [<value|regexp> [<replacement>]]
            -<field>
        }
    }
    """
    h.next()
    resources: list[dict] = []
    headers: HeaderOps | None = None
    if h.next_arg():
        resources.append({"target": h.val()} if h.val() else {})
    while h.next_block(0):
        sub = h.val()
        if sub == "headers":
            if h.next_arg():
                raise h.arg_err()
            nesting = h.nesting()
            while h.next_block(nesting):
                args = [h.val(), *h.remaining_args()]
                if headers is None:
                    headers = HeaderOps()
                if len(args) > 3:
                    raise h.arg_err()
                value = args[1] if len(args) > 1 else ""
                replacement = args[2] if len(args) > 2 else None
                problem = apply_header_op(headers, None, args[0], value, replacement)
                if problem:
                    raise h.err(problem)
        elif sub in ("GET", "HEAD"):
            if not h.next_arg():
                raise h.arg_err()
            resources.append({k: v for k, v in (("method", sub), ("target", h.val())) if v})
        else:
            resources.append({"target": sub} if sub else {})
    out: dict = {"handler": "push"}
    if resources:
        out["resources"] = resources
    if headers is not None:
        out["headers"] = headers.to_json()
    return out
