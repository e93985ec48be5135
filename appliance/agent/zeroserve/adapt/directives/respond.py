"""`respond` and `abort`: the `static_response` handler (modules/caddyhttp/staticresp.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import Helper
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import atoi, omit_empty, weak_string


def status_or_text(args: list[str]) -> tuple[str, str]:
    """(text, status) from `<status>|<text> [<status>]`.

    A lone argument is a status code when it is a positive three-digit integer.
    """
    if len(args) == 1:
        arg = args[0]
        if len(arg) == 3:
            try:
                if atoi(arg) > 0:
                    return "", arg
            except ValueError:
                pass
        return arg, ""
    return args[0], args[1]


@handler_directive("respond")
def parse_respond(h: Helper) -> dict:
    """Syntax::

    respond [<matcher>] <status>|<body> [<status>] {
        body <text>
        close
    }
    """
    h.next()
    args = h.remaining_args()
    if len(args) not in (1, 2):
        raise h.arg_err()
    body, status = status_or_text(args)
    close = False
    while h.next_block(0):
        sub = h.val()
        if sub == "body":
            if body:
                raise h.err("body already specified")
            only = h.all_args(1)
            if only is None:
                raise h.arg_err()
            body = only[0]
        elif sub == "close":
            if close:
                raise h.err("close already specified")
            close = True
        else:
            raise h.errf("unrecognized subdirective '%s'", sub)
    return static_response(status=status, body=body, close=close)


@handler_directive("abort")
def parse_abort(h: Helper) -> dict:
    """Syntax::

    abort [<matcher>]
    """
    h.next()
    if h.next() or h.next_block(0):
        raise h.arg_err()
    return static_response(abort=True)


def static_response(
    status: str = "",
    headers: dict | None = None,
    body: str = "",
    close: bool = False,
    abort: bool = False,
) -> dict:
    """The `static_response` handler object (StaticResponse, empty fields left out)."""
    fields = omit_empty(
        {"status_code": status, "headers": headers, "body": body, "close": close, "abort": abort}
    )
    if status:
        # omitempty looks at the string; "0" or "false" are set and encode as 0 / false
        fields["status_code"] = weak_string(status)
    return {"handler": "static_response", **fields}
