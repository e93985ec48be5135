"""The routing directives: route, handle, handle_path, handle_errors, invoke (builtins.go)."""

from __future__ import annotations

from zeroserve.adapt.helper import (
    NAMED_ROUTE_KEY,
    ConfigValue,
    Helper,
    Route,
    Subroute,
    parse_segment_as_config,
    parse_segment_as_subroute,
    subroute_handler,
)
from zeroserve.adapt.order import build_subroute
from zeroserve.adapt.registry import directive, handler_directive
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


@handler_directive("route")
def parse_route(h: Helper) -> dict:
    """Syntax: ``route [<matcher>] { <directives...> }`` — kept in the order written."""
    results = parse_segment_as_config(h)
    for r in results:
        if not isinstance(r.value, Route | Subroute):
            raise h.errf(
                "%s directive returned something other than an HTTP route or "
                "subroute: %s (only handler directives can be used in routes)",
                r.directive,
                repr(r.value),
            )
    return subroute_handler(build_subroute(results, h.group_counter, False))


@handler_directive("handle")
def parse_handle(h: Helper) -> dict:
    """Syntax: ``handle [<matcher>] { <directives...> }`` — mutually exclusive siblings."""
    return parse_segment_as_subroute(h)


@directive("handle_path")
def parse_handle_path(h: Helper) -> list[ConfigValue]:
    """Syntax: ``handle_path <path_matcher> { <directives...> }``.

    Like handle, plus a `strip_path_prefix` rewrite of the path prefix.
    """
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    path = h.val()
    if not path.startswith("/"):
        raise h.errf("path matcher must begin with '/', got %s", path)
    # only what comes before the '/' of '/*' is stripped (/api/* strips /api)
    if path.endswith("/*"):
        prefix = path[:-2]
    elif path.endswith("*"):
        prefix = path[:-1]
    else:
        prefix = path
    # rewind so that the path token takes the place of the directive name
    h.reset()
    h.next()
    subroute = parse_segment_as_subroute(h)
    strip = GoMap(handler="rewrite", strip_path_prefix=prefix)
    # a new handler: a module object is final once made (ModuleObject in caddyjson/model.py)
    handler = {**subroute, "routes": [{"handle": [strip]}, *subroute.get("routes", [])]}
    matcher_set = GoMap(path=[path])
    return h.new_route(matcher_set, handler)


@directive("handle_errors")
def parse_handle_errors(h: Helper) -> list[ConfigValue]:
    """Syntax: ``handle_errors [<status_codes...>] { <directives...> }``.

    Codes (`404`, `5xx`) become an expression matcher on `{http.error.status_code}`.
    """
    h.next()
    expression = ""
    args = h.remaining_args()
    if args:
        codes = []
        for val in args:
            if len(val) != 3:
                raise h.errf("bad status value '%s'", val)
            if val.endswith("xx"):
                first = val[:1]
                if not first.isdigit():
                    raise h.errf(
                        "bad status value '%s': strconv.Atoi: parsing \"%s\": invalid syntax",
                        first,
                        first,
                    )
                if expression:
                    expression += " || "
                expression += (
                    f"{{http.error.status_code}} >= {first}00 && "
                    f"{{http.error.status_code}} <= {first}99"
                )
                continue
            if not (val.isascii() and val.lstrip("+-").isdigit()):
                raise h.errf(
                    "bad status value '%s': strconv.Atoi: parsing \"%s\": invalid syntax", val, val
                )
            codes.append(val)
        if codes:
            if expression:
                expression += " || "
            expression += "{http.error.status_code} in [" + ", ".join(codes) + "]"
        h.reset()
        h.next()
        h.remaining_args()
        h.prev()
    else:
        h.prev()

    d: Dispenser = h.dispenser
    routes = build_subroute(
        parse_segment_as_config(h.with_dispenser(d)), h.group_counter, True, h.options.get("order")
    )
    # the block stays one subroute, behind the status matcher if there is one
    route = Route(handle=[subroute_handler(routes)])
    if expression:
        route.match = [GoMap(expression=expression)]
    return [ConfigValue("error_route", [route])]


@handler_directive("invoke")
def parse_invoke(h: Helper) -> dict:
    """Syntax: ``invoke [<matcher>] <route_name>``."""
    h.next()
    if not h.next_arg():
        raise h.arg_err()
    name = h.val()
    if h.next() or h.next_block(0):
        raise h.arg_err()
    h.state.setdefault(NAMED_ROUTE_KEY, None)
    if h.state[NAMED_ROUTE_KEY] is None:
        h.state[NAMED_ROUTE_KEY] = {}
    h.state[NAMED_ROUTE_KEY][name] = None
    return {"handler": "invoke", "name": name}
