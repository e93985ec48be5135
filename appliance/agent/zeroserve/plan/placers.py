"""One placer per matcher and handler kind, each registered in a table.

A matcher placer says whether a matcher can be decided from the packet alone
(it then yields the source prefixes it admits) or needs HTTP (and why). A handler
placer decides the route's layer given what its matchers allow; handlers that
only need HTTP share one placer, told what they do. Tables mirror Caddy's module
namespaces (`http.matchers.*`, `http.handlers.*`), so adding a kind is one entry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zeroserve.plan.model import Layer

ALL_SOURCES = ("0.0.0.0/0", "::/0")
# The key caddy-ratelimit fills with the client's address (the connection's, not a header's).
SOURCE_KEY = "{http.request.remote.host}"


@dataclass(frozen=True)
class Sources:
    """The matcher holds for exactly these source prefixes."""

    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Blocked:
    """Why a rule stays in the engine (the matcher needs HTTP, say), and what would free it."""

    reason: str
    hint: str = "with only remote_ip/client_ip matchers it would run in XDP"


MatcherVerdict = Sources | Blocked
MatcherPlacer = Callable[[Any, dict], MatcherVerdict]
MATCHERS: dict[str, MatcherPlacer] = {}


def matcher(name: str) -> Callable[[MatcherPlacer], MatcherPlacer]:
    def register(fn: MatcherPlacer) -> MatcherPlacer:
        if name in MATCHERS:
            raise ValueError(f"matcher placer {name!r} registered twice")
        MATCHERS[name] = fn
        return fn

    return register


def _prefixes(name: str, ranges: Any) -> MatcherVerdict:
    out = []
    for item in ranges or []:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            return Blocked(f"`{name}` range {item!r} is not an address or CIDR prefix")
    if not out:
        return Blocked(f"`{name}` has no ranges")
    return Sources(tuple(out))


@matcher("remote_ip")
def _remote_ip(value: Any, server: dict) -> MatcherVerdict:
    if value.get("forwarded"):
        return Blocked("`remote_ip forwarded` reads X-Forwarded-For")
    return _prefixes("remote_ip", value.get("ranges"))


@matcher("client_ip")
def _client_ip(value: Any, server: dict) -> MatcherVerdict:
    # With trusted proxies the client address may come from a header; without, it
    # is the connection's source, exactly what XDP sees.
    if server.get("trusted_proxies"):
        return Blocked(
            "`client_ip` with trusted_proxies may read X-Forwarded-For",
            "`remote_ip` (the connection's address) would run in XDP",
        )
    return _prefixes("client_ip", value.get("ranges"))


def _needs(what: str) -> MatcherPlacer:
    def place(value: Any, server: dict) -> MatcherVerdict:
        return Blocked(what)

    return place


for _name, _what in {
    "host": "`host` needs HTTP (the Host header)",
    "path": "`path` needs HTTP (the request path)",
    "path_regexp": "`path_regexp` needs HTTP (the request path)",
    "url_pattern": "`url_pattern` needs HTTP (the request URL)",
    "method": "`method` needs HTTP",
    "header": "`header` needs HTTP headers",
    "header_regexp": "`header_regexp` needs HTTP headers",
    "query": "`query` needs HTTP (the query string)",
    "protocol": "`protocol` needs the negotiated HTTP version",
    "not": "`not` needs HTTP (the negation of request matchers)",
    "vars": "`vars` needs the request's variables",
    "vars_regexp": "`vars_regexp` needs the request's variables",
    "file": "`file` needs the request path and the file system",
    "expression": "`expression` needs HTTP (a CEL expression over the request)",
    "tls": "`tls` needs the TLS handshake",
}.items():
    matcher(_name)(_needs(_what))


def place_matcher(name: str, value: Any, server: dict) -> MatcherVerdict:
    placer = MATCHERS.get(name)
    if placer is None:
        return Blocked(f"`{name}` is a matcher the planner does not know")
    return placer(value, server)


@dataclass(frozen=True)
class RouteContext:
    """What the planner learned about a route before asking its handlers."""

    sources: tuple[str, ...] | None  # None: every source, or matchers need HTTP (see blocker)
    blocker: str  # why the route cannot leave the engine, "" if nothing but the handler decides
    hint: str  # what would lift the blocker
    ports: tuple[int, ...]


@dataclass(frozen=True)
class Decision:
    layer: Layer
    reason: str
    hint: str = ""
    deny: tuple[str, ...] = ()  # XDP: source prefixes to drop
    rate: tuple[tuple[int, int], ...] = ()  # XDP: (max_events, window ns) per source


@dataclass(frozen=True)
class HandlerPlacer:
    name: str
    directives: tuple[str, ...]  # Caddyfile directives that emit it (for line numbers)
    passes_through: bool  # always calls the next handler: never answers by itself
    place: Callable[[dict, RouteContext], Decision]

    def directive_for(self, handler: dict) -> tuple[str, ...]:
        if self.name == "static_response":
            if handler.get("abort"):
                return ("abort",)
            if "Location" in (handler.get("headers") or {}):
                return ("redir", "respond")
            return ("respond",)
        return self.directives


HANDLERS: dict[str, HandlerPlacer] = {}


def handler(
    name: str, directives: tuple[str, ...], passes_through: bool = False
) -> Callable[[Callable[[dict, RouteContext], Decision]], HandlerPlacer]:
    def register(fn: Callable[[dict, RouteContext], Decision]) -> HandlerPlacer:
        if name in HANDLERS:
            raise ValueError(f"handler placer {name!r} registered twice")
        HANDLERS[name] = HandlerPlacer(name, directives, passes_through, fn)
        return HANDLERS[name]

    return register


@handler("static_response", ("respond", "abort", "redir"))
def _static_response(h: dict, ctx: RouteContext) -> Decision:
    if not h.get("abort"):
        directive = "redir" if "Location" in (h.get("headers") or {}) else "respond"
        hint = "`abort` would run in XDP" if ctx.sources and not ctx.blocker else ""
        return Decision(Layer.ENGINE, f"`{directive}` needs HTTP", hint)
    if ctx.blocker:
        return Decision(Layer.ENGINE, ctx.blocker, ctx.hint)
    sources = ctx.sources or ALL_SOURCES
    return Decision(
        Layer.XDP,
        "abort on source address and listener only: XDP drops the packets",
        deny=sources,
    )


@handler("rate_limit", ("rate_limit",))
def _rate_limit(h: dict, ctx: RouteContext) -> Decision:
    zones = h.get("rate_limits") or {}
    why = ""
    if ctx.blocker:
        why = ctx.blocker
    elif ctx.sources is not None:
        why = "a rate limit behind a remote_ip matcher needs per-prefix buckets"
    elif "distributed" in h:  # present, even empty, means shared state
        why = "`distributed` rate limits share state across instances"
    elif not zones:
        why = "no zones"
    for name, zone in zones.items():
        if why:
            break
        if zone.get("key") != SOURCE_KEY:
            why = f"zone {name} is keyed on {zone.get('key')!r}, not the client address"
        elif zone.get("match"):
            why = f"zone {name} has its own request matchers"
    if why:
        return Decision(Layer.ENGINE, why, f"zones keyed on {SOURCE_KEY} alone would run in XDP")
    rate = tuple((int(z["max_events"]), int(z["window"])) for z in zones.values())
    return Decision(Layer.XDP, "per-source limit: XDP token buckets on new connections", rate=rate)


def _http_only(what: str) -> Callable[[dict, RouteContext], Decision]:
    def place(h: dict, ctx: RouteContext) -> Decision:
        return Decision(Layer.ENGINE, what)

    return place


# name, directives, passes through, what it needs HTTP for
for _name, _directives, _through, _what in (
    ("headers", ("header", "request_header"), True, "`header` edits HTTP headers"),
    ("vars", ("vars", "root", "log_skip", "skip_log", "log_name"), True, "sets request variables"),
    ("map", ("map",), True, "`map` reads placeholders of the request"),
    (
        "rewrite",
        ("rewrite", "uri", "method", "try_files", "handle_path"),
        True,
        "rewrites the HTTP request",
    ),
    ("encode", ("encode",), True, "`encode` compresses HTTP responses"),
    ("templates", ("templates",), True, "`templates` renders HTTP responses"),
    ("intercept", ("intercept",), True, "`intercept` rewrites HTTP responses"),
    ("push", ("push",), True, "`push` is HTTP/2 server push"),
    ("request_body", ("request_body",), True, "`request_body` limits HTTP bodies"),
    ("tracing", ("tracing",), True, "`tracing` traces HTTP requests"),
    ("log_append", ("log_append",), True, "`log_append` adds to the access log"),
    ("copy_response_headers", ("copy_response_headers",), True, "copies HTTP headers"),
    ("authentication", ("basic_auth", "basicauth"), False, "authentication needs HTTP"),
    ("reverse_proxy", ("reverse_proxy", "php_fastcgi", "forward_auth"), False, "proxies HTTP"),
    ("file_server", ("file_server",), False, "serves files over HTTP"),
    ("error", ("error",), False, "`error` answers with an HTTP error"),
    ("metrics", ("metrics",), False, "`metrics` serves an HTTP endpoint"),
    ("acme_server", ("acme_server",), False, "`acme_server` serves ACME over HTTP"),
    ("copy_response", ("copy_response",), False, "copies an HTTP response"),
    ("invoke", ("invoke",), False, "`invoke` runs a named route"),
):
    handler(_name, _directives, _through)(_http_only(_what))

# The walker descends into subroutes; this entry serves line lookup and the table's
# completeness. Whether a subroute passes through is decided from its routes.
handler("subroute", ("handle", "route", "handle_path", "handle_errors"))(
    _http_only("groups routes")
)


def unknown_handler(name: str) -> HandlerPlacer:
    return HandlerPlacer(
        name, (name,), False, _http_only(f"`{name}` is a handler the planner does not know")
    )


def placer_for(name: str) -> HandlerPlacer:
    return HANDLERS.get(name) or unknown_handler(name)
