"""Named response matchers (Caddy's `caddyhttp.ParseNamedResponseMatcher`).

Used inside `reverse_proxy`, `intercept`, `header` and `encode` to select
responses by status code and headers. Not a request matcher, so not registered.
"""

from __future__ import annotations

from zeroserve.adapt.matchers.header import unmarshal_header_into
from zeroserve.adapt.values import atoi
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


def parse_named_response_matcher(d: Dispenser, matchers: dict[str, dict]) -> None:
    """Syntax::

        @name {
            status <codes...>
            header <field> [<value>]
        }
        @name status <codes...>|header <field> [<value>]

    Adds the matcher (ResponseMatcher JSON: status_code, headers) to `matchers`.
    """
    while d.next():
        definition = d.val()
        if definition in matchers:
            raise d.err(f"matcher is defined more than once: {definition}")
        status_codes: list[int] | None = None
        headers: GoMap | None = None
        nesting = d.nesting()
        while d.next_arg() or d.next_block(nesting):
            kind = d.val()
            if kind == "header":
                if headers is None:
                    headers = GoMap()
                unmarshal_header_into(d.new_from_next_segment(), headers)
            elif kind == "status":
                if status_codes is None:
                    status_codes = []
                args = d.remaining_args()
                if not args:
                    raise d.arg_err()
                status_codes.extend(parse_status_codes(d, args, "bad status value '%s': %s"))
            else:
                raise d.err(f"unrecognized response matcher {kind}")
        out: dict = {}
        if status_codes:
            out["status_code"] = status_codes
        if headers:
            out["headers"] = headers
        matchers[definition] = out


def parse_status_codes(d: Dispenser, args: list[str], message: str) -> list[int]:
    """Status codes where `Nxx` stands for the class N; `message` formats (code, error)."""
    codes = []
    for arg in args:
        text = arg[:1] if len(arg) == 3 and arg.endswith("xx") else arg
        try:
            codes.append(atoi(text))
        except ValueError as exc:
            raise d.err(message % (text, exc)) from None
    return codes
