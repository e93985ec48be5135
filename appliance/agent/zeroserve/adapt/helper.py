"""What a directive function gets to work with: Caddy's `httpcaddyfile.Helper`.

A `Helper` wraps the dispenser over one directive's tokens (every dispenser
method is reachable on the helper itself: `h.next()`, `h.val()`, `h.errf(...)`),
plus the adaptation's options, warnings, named matchers and shared state.

Route values travel as `Route` (one route) or `Subroute` (routes to keep
together, in order, without nesting them) inside `ConfigValue`s of class
"route"; everything a helper hands back to directive code is plain JSON data.

Config value classes the server builder reads (as Caddy's pile):

- "route": Route | Subroute; "error_route": list[Route] (handle_errors)
- "bind": AddressesWithProtocols; "custom_log": NamedCustomLog; "named_route": str
- "tls.connection_policy" (dict), "tls.cert_issuer" (issuer dict with "module"),
  "tls.cert_loader" ((module name, items)), "tls.cert_manager", "tls.key_type",
  "tls.on_demand", "tls.reuse_private_keys", "tls.force_automate",
  "tls.renewal_window_ratio"
- "pki.ca": a CA dict with its "id" (see pkiapp.py); "listener_wrapper": a module object

JSON conventions (see caddyjson): a dict is a Go struct (keys in field order), a
GoMap is a Go map (keys sorted); handler objects are module objects, sorted
recursively, exactly as Caddy's JSONModuleObject leaves them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zeroserve.adapt import registry
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyfile.lexer import Token
from zeroserve.caddyjson import GoMap, module_object

if TYPE_CHECKING:
    from zeroserve.caddyfile.parser import ServerBlock

MATCHER_PREFIX = "@"
NAMED_ROUTE_KEY = "named_route"


@dataclass
class Warning:  # noqa: A001 - Caddy's name for it
    """Caddy's `caddyconfig.Warning`."""

    file: str = ""
    line: int = 0
    directive: str = ""
    message: str = ""

    def __str__(self) -> str:
        directive = f" ({self.directive})" if self.directive else ""
        return f"{self.file}:{self.line}{directive}: {self.message}"


@dataclass
class ConfigValue:
    """A value piled up by a directive; `class_name` says where the config builder puts it."""

    class_name: str
    value: Any
    directive: str = ""


@dataclass
class AddressesWithProtocols:
    """The value of a "bind" config value: listener addresses and the protocols to serve."""

    addresses: list[str]
    protocols: list[str] | None = None


@dataclass
class NamedCustomLog:
    """The value of a "custom_log" config value (log directive, log global option)."""

    name: str = ""
    hostnames: list[str] = field(default_factory=list)
    log: dict | None = None
    no_hostname: bool = False


@dataclass
class Route:
    """Caddy's `caddyhttp.Route` while it is being assembled."""

    match: list[GoMap] | None = None
    handle: list[dict] = field(default_factory=list)
    group: str = ""
    terminal: bool = False

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.group:
            out["group"] = self.group
        if self.match:
            out["match"] = self.match
        if self.handle:
            out["handle"] = self.handle
        if self.terminal:
            out["terminal"] = True
        return out

    def same_position(self, other: Route) -> bool:
        """True when `other` could be merged into this route (Caddy's consolidateRoutes)."""
        return (
            (self.match or []) == (other.match or [])
            and self.terminal == other.terminal
            and self.group == other.group
        )


@dataclass
class Subroute:
    """A "route" value that is a list of routes to keep together and in order, unnested."""

    routes: list[Route] = field(default_factory=list)


def subroute_handler(routes: list[Route], errors: list[Route] | None = None) -> GoMap:
    """The `subroute` handler object for `routes` (and optional error routes)."""
    body: dict[str, Any] = {}
    if routes:
        body["routes"] = [r.to_json() for r in routes]
    if errors:
        body["errors"] = {"routes": [r.to_json() for r in errors]}
    return module_object(body, "handler", "subroute")


class Counter:
    """Hands out the group names `group0`, `group1`, ... for one adaptation."""

    def __init__(self) -> None:
        self.n = 0

    def next_group(self) -> str:
        name = f"group{self.n}"
        self.n += 1
        return name


class Helper:
    """Caddy's Helper: a dispenser plus the context of the directive being parsed."""

    def __init__(
        self,
        dispenser: Dispenser,
        options: dict[str, Any],
        warnings: list[Warning],
        matcher_defs: dict[str, GoMap] | None,
        parent_block: ServerBlock,
        group_counter: Counter,
        state: dict[str, Any],
        block_state: dict[str, Any] | None = None,
    ) -> None:
        self.dispenser = dispenser
        self.options = options
        self.warnings = warnings
        self.matcher_defs = matcher_defs if matcher_defs is not None else {}
        self.parent_block = parent_block
        self.group_counter = group_counter
        self.state = state
        self.block_state = block_state if block_state is not None else {}

    def __getattr__(self, name: str) -> Any:
        # Caddy embeds the Dispenser in the Helper; delegate its methods
        return getattr(self.dispenser, name)

    def option(self, name: str) -> Any:
        return self.options.get(name)

    def caddyfiles(self) -> list[str]:
        """Sorted names of the files the tokens of this server block came from."""
        return sorted({tok.file for seg in self.parent_block.segments for tok in seg})

    def with_dispenser(self, d: Dispenser) -> Helper:
        h = Helper(
            d,
            self.options,
            self.warnings,
            self.matcher_defs,
            self.parent_block,
            self.group_counter,
            self.state,
            self.block_state,
        )
        return h

    def matcher_token(self) -> tuple[GoMap | None, bool]:
        """If the next argument is a matcher token, its matcher set and True; else (None, False).

        A catch-all `*` gives (None, True).
        """
        if not self.dispenser.next_arg():
            return None, False
        return matcher_set_from_token(self.dispenser.token(), self.matcher_defs)

    def extract_matcher_set(self) -> GoMap | None:
        """The matcher set of an optional matcher token, which is then removed from the tokens.

        The dispenser is reset afterwards, as if the look-ahead never happened.
        """
        matcher_set, has_matcher = self.matcher_token()
        if has_matcher:
            self.dispenser.delete()
        self.dispenser.reset()
        return matcher_set

    def new_route(self, matcher_set: GoMap | None, handler: dict) -> list[ConfigValue]:
        """One "route" config value running `handler` behind `matcher_set` (None = all)."""
        return [ConfigValue("route", new_route(matcher_set, handler))]

    def group_routes(self, vals: list[ConfigValue]) -> None:
        """Put the Route values among `vals` into one new group, if there are at least two."""
        routes = [v.value for v in vals if isinstance(v.value, Route)]
        if len(routes) < 2:
            return
        name = self.group_counter.next_group()
        for r in routes:
            r.group = name

    def new_bind_addresses(self, addrs: list[str]) -> list[ConfigValue]:
        return [ConfigValue("bind", AddressesWithProtocols(list(addrs)))]


def new_route(matcher_set: GoMap | None, handler: dict) -> Route:
    if "handler" not in handler:
        raise ValueError("handler object without a 'handler' field")
    name = handler["handler"]
    body = {k: v for k, v in handler.items() if k != "handler"}
    return Route(
        match=[matcher_set] if matcher_set is not None else None,
        handle=[module_object(body, "handler", name)],
    )


def matcher_set_from_token(tok: Token, matcher_defs: dict[str, GoMap]) -> tuple[GoMap | None, bool]:
    text = tok.text
    if text == "*":
        return None, True
    if text.startswith("/"):
        return GoMap(path=[text]), True
    if text.startswith(MATCHER_PREFIX):
        if text not in matcher_defs:
            raise CaddyfileError(f"unrecognized matcher name: {text}")
        return matcher_defs[text], True
    return None, False


def parse_matcher_definitions(d: Dispenser, matchers: dict[str, GoMap]) -> None:
    """Parse one named matcher definition (`@name ...`) from `d` into `matchers`."""
    d.next()
    name = d.val()
    if name in matchers:
        raise CaddyfileError(f"matcher is defined more than once: {name}")
    matcher_set = GoMap()
    matchers[name] = matcher_set

    def make(matcher_name: str, tokens: list[Token]) -> None:
        fn = registry.matchers.get(matcher_name)
        if fn is None:
            raise CaddyfileError(
                f"getting matcher module '{matcher_name}': "
                f"module not registered: http.matchers.{matcher_name}"
            )
        matcher_set[matcher_name] = fn(Dispenser(tokens), name[1:])

    # a quoted first argument is an expression matcher without its name
    if d.next_arg():
        if d.token().was_quoted:
            tok = d.token()
            make("expression", [dataclasses.replace(tok, text="expression"), tok])
            return
        d.prev()

    # several occurrences of one matcher are concatenated into one dispenser
    by_name: dict[str, list[Token]] = {}
    nesting = d.nesting()
    while d.next_arg() or d.next_block(nesting):
        by_name.setdefault(d.val(), []).extend(d.next_segment())
    for matcher_name, tokens in by_name.items():
        make(matcher_name, tokens)


def parse_segment_as_config(h: Helper) -> list[ConfigValue]:
    """Treat the block of the current directive as a list of directives; their config values."""
    results: list[ConfigValue] = []
    while h.next():
        if h.next_arg():
            raise h.arg_err()
        segments: list[list[Token]] = []
        nesting = h.nesting()
        while h.next_block(nesting):
            segments.append(h.next_segment())

        # matcher definitions in this scope extend (a copy of) the outer ones
        matcher_defs = dict(h.matcher_defs)
        directive_segments = []
        for seg in segments:
            if seg and seg[0].text.startswith(MATCHER_PREFIX):
                parse_matcher_definitions(Dispenser(seg), matcher_defs)
            else:
                directive_segments.append(seg)

        block_state = dict(h.block_state)
        for seg in directive_segments:
            name = seg[0].text
            fn = registry.directives.get(name)
            if fn is None:
                raise h.errf(
                    "unrecognized directive: %s - are you sure your Caddyfile structure "
                    "(nesting and braces) is correct?",
                    name,
                )
            sub = h.with_dispenser(Dispenser(seg))
            sub.matcher_defs = matcher_defs
            sub.block_state = block_state
            try:
                vals = fn(sub)
            except CaddyfileError as exc:
                raise h.errf("parsing caddyfile tokens for '%s': %s", name, str(exc)) from None
            name = normalize_directive_name(name)
            for v in vals:
                v.directive = name
                results.append(v)
    return results


def parse_segment_as_subroute(h: Helper) -> GoMap:
    """The block of the current directive as a `subroute` handler object (directives sorted)."""
    from zeroserve.adapt.order import build_subroute

    routes = build_subroute(
        parse_segment_as_config(h), h.group_counter, True, h.options.get("order")
    )
    return subroute_handler(routes)


def normalize_directive_name(name: str) -> str:
    # handle_path sorts at the same level as handle
    return "handle" if name == "handle_path" else name
