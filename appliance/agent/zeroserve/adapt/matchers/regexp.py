"""The regular-expression request matchers: `path_regexp`, `header_regexp`, `vars_regexp`.

From Caddy's modules/caddyhttp/matchers.go and vars.go. Each regexp carries a name
for its capture placeholders; without an explicit one it takes the named matcher's
name (Caddy's `MatcherNameCtxKey`).
"""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


def _regexp(pattern: str, name: str) -> dict:
    # MatchRegexp's field order: name (omitempty), pattern
    out: dict = {}
    if name:
        out["name"] = name
    out["pattern"] = pattern
    return out


@matcher("path_regexp")
def unmarshal_path_regexp(d: Dispenser, name: str) -> dict:
    """Syntax::

    path_regexp [<name>] <regexp>
    """
    pattern = ""
    re_name = ""
    while d.next():
        # a second occurrence would overwrite the first
        if pattern:
            raise d.err("regular expression can only be used once per named matcher")
        args = d.remaining_args()
        if len(args) == 1:
            pattern = args[0]
        elif len(args) == 2:
            re_name, pattern = args
        else:
            raise d.arg_err()
        if not re_name:
            re_name = name
        if d.next_block(0):
            raise d.err("malformed path_regexp matcher: blocks are not supported")
    return _regexp(pattern, re_name)


def _field_regexps(d: Dispenser, name: str, kind: str) -> GoMap:
    """`<kind> [<name>] <field> <regexp>` lines, keyed by field."""
    out = GoMap()
    while d.next():
        if not d.next_arg():
            raise d.arg_err()
        first = d.val()
        if not d.next_arg():
            raise d.arg_err()
        second = d.val()
        if d.next_arg():
            re_name, field, pattern = first, second, d.val()
        else:
            re_name, field, pattern = "", first, second
        if not re_name:
            re_name = name
        if kind == "header_regexp" and field in out:
            raise d.err(
                "header_regexp matcher can only be used once per named matcher, "
                f"per header field: {field}"
            )
        out[field] = _regexp(pattern, re_name)
        if d.next_block(0):
            raise d.err(f"malformed {kind} matcher: blocks are not supported")
    return out


@matcher("header_regexp")
def unmarshal_header_regexp(d: Dispenser, name: str) -> GoMap:
    """Syntax::

    header_regexp [<name>] <field> <regexp>
    """
    return _field_regexps(d, name, "header_regexp")


@matcher("vars_regexp")
def unmarshal_vars_regexp(d: Dispenser, name: str) -> GoMap:
    """Syntax::

    vars_regexp [<name>] <variable> <regexp>
    """
    return _field_regexps(d, name, "vars_regexp")
