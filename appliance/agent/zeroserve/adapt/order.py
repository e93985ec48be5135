"""Directive order and the sorting of a site's routes (Caddy's directives.go, httptype.go).

`DEFAULT_ORDER` is Caddy's `defaultDirectiveOrder`, with the places the built-in plugins
take in it (`register_directive_order`, as their `init` does in Caddy); the `order` global
option yields a modified copy, kept in the adaptation's options under "order".
"""

from __future__ import annotations

import dataclasses

from zeroserve.adapt.gosort import stable_sort
from zeroserve.adapt.helper import ConfigValue, Counter, Route, Subroute
from zeroserve.caddyfile.errors import CaddyfileError

DEFAULT_ORDER: list[str] = [
    "tracing",
    # set variables that may be used by other directives
    "map",
    "vars",
    "fs",
    "root",
    "log_append",
    "skip_log",  # deprecated, renamed to log_skip
    "log_skip",
    "log_name",
    "header",
    "copy_response_headers",  # only in reverse_proxy's handle_response
    "request_body",
    "timeouts",
    "redir",
    # incoming request manipulation
    "method",
    "rewrite",
    "uri",
    "try_files",
    # middleware handlers; some wrap responses
    "basicauth",  # deprecated, renamed to basic_auth
    "basic_auth",
    "forward_auth",
    "request_header",
    "encode",
    "push",
    "intercept",
    "templates",
    # special routing & dispatching directives
    "invoke",
    "handle",
    "handle_path",
    "route",
    # handlers that typically respond to requests
    "abort",
    "error",
    "copy_response",  # only in reverse_proxy's handle_response
    "respond",
    "metrics",
    "reverse_proxy",
    "php_fastcgi",
    "file_server",
    "acme_server",
]


def register_directive_order(name: str, position: str, standard: str) -> None:
    """Caddy's RegisterDirectiveOrder: a plugin's directive goes "before" or "after" a
    standard one in the default order, so its users need no `order` line."""
    if name in DEFAULT_ORDER:
        raise ValueError(f"directive {name!r} already has a place in the order")
    at = DEFAULT_ORDER.index(standard)
    DEFAULT_ORDER.insert(at if position == "before" else at + 1, name)


# only the first matching instance of these should run, so they share a group
_MUTUALLY_EXCLUSIVE = ("handle", "rewrite", "root")


def _single_path(route: Route) -> str | None:
    if route.match is not None and len(route.match) == 1:
        paths = route.match[0].get("path")
        if isinstance(paths, list) and len(paths) == 1 and isinstance(paths[0], str):
            return paths[0]
    return None


def _blen(s: str) -> int:
    return len(s.encode())


def sort_routes(values: list[ConfigValue], order: list[str] | tuple[str, ...]) -> None:
    """Stable sort by directive order, then by path matcher specificity (Caddy's sortRoutes)."""
    positions = {name: i for i, name in enumerate(order)}

    def less(iv: ConfigValue, jv: ConfigValue) -> bool:
        i_dir, j_dir = iv.directive, jv.directive
        if i_dir != j_dir:
            return positions.get(i_dir, 0) < positions.get(j_dir, 0)
        i_route, j_route = iv.value, jv.value
        if not isinstance(i_route, Route) or not isinstance(j_route, Route):
            return False
        i_path, j_path = _single_path(i_route), _single_path(j_route)
        if i_path and j_path:
            i_trim, j_trim = i_path.removesuffix("*"), j_path.removesuffix("*")
            if i_trim == j_trim:
                by_path = _blen(i_path) < _blen(j_path)
            elif _blen(i_trim) == _blen(j_trim):
                by_path = i_trim.encode() < j_trim.encode()
            else:
                by_path = _blen(i_trim) > _blen(j_trim)
        else:
            by_path = bool(i_route.match) and not j_route.match
        # later vars should win, so the least specific goes first
        return not by_path if i_dir == "vars" else by_path

    stable_sort(values, less)


def consolidate_routes(routes: list[Route]) -> list[Route]:
    """Merge adjacent routes with the same matchers, group and terminal flag."""
    out: list[Route] = []
    for r in routes:
        if out and out[-1].same_position(r):
            out[-1].handle = out[-1].handle + r.handle
        else:
            out.append(r)
    return out


def build_subroute(
    values: list[ConfigValue],
    counter: Counter,
    needs_sorting: bool,
    order: list[str] | tuple[str, ...] | None = None,
) -> list[Route]:
    """The routes of a subroute built from piled-up "route" values (Caddy's buildSubroute)."""
    order = order or DEFAULT_ORDER
    # sorted in place, as Caddy does: a site served on several listeners is built (and
    # sorted) once per listener from the same list, and the comparator is not symmetric
    if needs_sorting:
        for v in values:
            if v.directive not in order:
                raise CaddyfileError(
                    f"directive '{v.directive}' is not an ordered HTTP handler, so it cannot "
                    "be used here - try placing within a route block or using the order "
                    "global option"
                )
        sort_routes(values, order)

    groups: dict[str, str] = {}
    for name in _MUTUALLY_EXCLUSIVE:
        count = sum(1 for v in values if v.directive == name)
        # a rewrite always gets its own group so that it never merges with neighbours
        groups[name] = counter.next_group() if count > 1 or name == "rewrite" else ""

    routes: list[Route] = []
    for v in values:
        val = v.value
        if isinstance(val, Subroute):
            routes.extend(dataclasses.replace(r) for r in val.routes)
        elif isinstance(val, Route):
            r = dataclasses.replace(val)
            if v.directive in groups:
                r.group = groups[v.directive]
            routes.append(r)
    return consolidate_routes(routes)
