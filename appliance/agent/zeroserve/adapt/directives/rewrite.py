"""`rewrite`, `method` and `uri`: the `rewrite` handler (modules/caddyhttp/rewrite/caddyfile.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import ConfigValue, Helper
from zeroserve.adapt.registry import directive, handler_directive
from zeroserve.adapt.values import atoi, omit_empty


@directive("rewrite")
def parse_rewrite(h: Helper) -> list[ConfigValue]:
    """Syntax::

        rewrite [<matcher>] <to>

    Only the URI components present in `<to>` are changed.
    """
    h.next()
    count = h.count_remaining_args()
    if count == 0:
        raise h.errf("too few arguments; must have at least a rewrite URI")
    if count > 2:
        raise h.errf("too many arguments; should only be a matcher and a URI")
    # one argument is the URI, even when it looks like a matcher
    if count == 1:
        h.next_arg()
        return h.new_route(None, _rewrite(uri=h.val()))
    matcher_set = h.extract_matcher_set()
    h.next()
    h.next()
    return h.new_route(matcher_set, _rewrite(uri=h.val()))


def _rewrite(**fields: object) -> dict:
    """A `rewrite` handler; Rewrite's fields (and those of its parts) are all omitempty."""
    return {"handler": "rewrite", **omit_empty(fields)}


@handler_directive("method")
def parse_method(h: Helper) -> dict:
    """Syntax::

    method [<matcher>] <method>
    """
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    if h.next_arg():
        raise h.arg_err()
    return _rewrite(method=h.val())


@handler_directive("uri")
def parse_uri(h: Helper) -> dict:
    """Syntax::

    uri [<matcher>] strip_prefix <prefix>
    uri [<matcher>] strip_suffix <suffix>
    uri [<matcher>] replace <find> <replace> [<limit>]
    uri [<matcher>] path_regexp <find> <replace>
    uri [<matcher>] query [-|+]<key>|<key>>[<new>] [<val>] [<replace>]
    uri [<matcher>] query {
        <query ops...>
    }
    """
    h.next()
    args = h.remaining_args()
    if not args:
        raise h.arg_err()
    op = args[0]
    out: dict = {}
    if op == "strip_prefix":
        if len(args) != 2:
            raise h.arg_err()
        out["strip_path_prefix"] = args[1]
    elif op == "strip_suffix":
        if len(args) != 2:
            raise h.arg_err()
        out["strip_path_suffix"] = args[1]
    elif op == "replace":
        if len(args) not in (3, 4):
            raise h.arg_err()
        limit = 0
        if len(args) == 4 and args[3] != "":
            try:
                limit = atoi(args[3])
            except ValueError as exc:
                raise h.errf("limit must be an integer; invalid: %v", exc) from None
        out["uri_substring"] = [omit_empty({"find": args[1], "replace": args[2], "limit": limit})]
    elif op == "path_regexp":
        if len(args) != 3:
            raise h.arg_err()
        out["path_regexp"] = [omit_empty({"find": args[1], "replace": args[2]})]
    elif op == "query":
        if len(args) > 4:
            raise h.arg_err()
        query: dict[str, list] = {}
        has_args = len(args) > 1
        if has_args:
            _query_op(h, query, args[1:])
        while h.next_block(0):
            if has_args:
                raise h.err("Cannot specify uri query rewrites in both argument and block")
            _query_op(h, query, [h.val(), *h.remaining_args()])
    else:
        raise h.errf("unrecognized URI manipulation '%s'", op)
    handler = {"handler": "rewrite", **omit_empty(out)}
    if op == "query":
        # a pointer field in Caddy: the query operations stay even when empty
        handler["query"] = query
    return handler


def _query_op(h: Helper, query: dict[str, list], args: list[str]) -> None:
    key = args[0]
    if key.startswith("-"):
        if len(args) != 1:
            raise h.arg_err()
        query.setdefault("delete", []).append(key.lstrip("-"))
    elif key.startswith("+"):
        if len(args) != 2:
            raise h.arg_err()
        query.setdefault("add", []).append(omit_empty({"key": key.lstrip("+"), "val": args[1]}))
    elif ">" in key:
        if len(args) != 1:
            raise h.arg_err()
        parts = key.split(">")
        query.setdefault("rename", []).append(omit_empty({"key": parts[0], "val": parts[1]}))
    elif len(args) == 3:
        query.setdefault("replace", []).append(
            omit_empty({"key": key, "search_regexp": args[1], "replace": args[2]})
        )
    else:
        if len(args) != 2:
            raise h.arg_err()
        query.setdefault("set", []).append(omit_empty({"key": key, "val": args[1]}))
