"""Server blocks → Caddy's JSON config: the `Setup` of Caddy's httpcaddyfile server type.

Flow (as in httptype.go): global options → named routes → each site's directives
into a "pile" of config values → map every key to its listener addresses →
group addresses that serve identical sites → one server per group → HTTP app,
then the TLS app, PKI app, logging, admin and storage around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zeroserve.adapt import adaptlog, registry
from zeroserve.adapt.addresses import (
    DEFAULT_HTTP_PORT,
    DEFAULT_HTTPS_PORT,
    Address,
    join_host_port,
    join_network_address,
    listeners_use_any_port_other_than,
    parse_address,
    parse_network_address,
    split_host_port,
    split_network_address,
)
from zeroserve.adapt.gosort import stable_sort, unstable_sort
from zeroserve.adapt.helper import (
    MATCHER_PREFIX,
    NAMED_ROUTE_KEY,
    AddressesWithProtocols,
    ConfigValue,
    Counter,
    Helper,
    NamedCustomLog,
    Route,
    Warning,
    normalize_directive_name,
    parse_matcher_definitions,
    parse_segment_as_subroute,
    subroute_handler,
)
from zeroserve.adapt.order import build_subroute, consolidate_routes
from zeroserve.adapt.shorthands import apply_to_segment
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyfile.lexer import Token
from zeroserve.caddyjson import GoMap, struct

SERVER_KEYS = (
    "listen",
    "listener_wrappers",
    "packet_conn_wrappers",
    "read_timeout",
    "read_header_timeout",
    "read_idle_timeout",
    "read_min_rate",
    "write_timeout",
    "write_idle_timeout",
    "write_min_rate",
    "max_write_chunk",
    "idle_timeout",
    "keepalive_interval",
    "keepalive_idle",
    "keepalive_count",
    "max_header_bytes",
    "enable_full_duplex",
    "expected_underscore_headers",
    "expected_dot_headers",
    "routes",
    "errors",
    "named_routes",
    "tls_connection_policies",
    "automatic_https",
    "strict_sni_host",
    "trusted_proxies",
    "client_ip_headers",
    "trusted_proxies_strict",
    "trusted_proxies_unix",
    "logs",
    "protocols",
    "listen_protocols",
    "allow_0rtt",
    "metrics",
)


@dataclass
class SiteBlock:
    """Caddy's `serverBlock`: one site's keys and tokens plus its pile of config values."""

    keys: list[Token]
    segments: list[list[Token]]
    pile: dict[str, list[ConfigValue]]
    parsed_keys: list[Address] = field(default_factory=list)
    origin: int = 0
    has_braces: bool = True

    def hosts_from_keys(self, logger_mode: bool) -> list[str]:
        hosts: dict[str, None] = {}
        for addr in self.parsed_keys:
            if addr.host == "":
                if not logger_mode:
                    return []
                continue
            if logger_mode and addr.port not in (
                "",
                str(DEFAULT_HTTP_PORT),
                str(DEFAULT_HTTPS_PORT),
            ):
                hosts[join_host_port(addr.host, addr.port)] = None
            else:
                hosts[addr.host] = None
        return list(hosts)

    def hosts_from_keys_not_http(self, http_port: str) -> list[str]:
        hosts: dict[str, None] = {}
        for addr in self.parsed_keys:
            if addr.host and addr.scheme != "http" and addr.port != http_port:
                hosts[addr.host] = None
        return list(hosts)

    def has_host_catch_all_key(self) -> bool:
        return any(a.host == "" for a in self.parsed_keys)

    def is_all_http(self) -> bool:
        return all(a.scheme == "http" for a in self.parsed_keys)

    def same_site(self, other: SiteBlock) -> bool:
        return self.origin == other.origin and [id(k) for k in self.keys] == [
            id(k) for k in other.keys
        ]


@dataclass
class Pairing:
    """Caddy's sbAddrAssociation: listener addresses (with protocols) and their sites."""

    addresses: list[tuple[str, list[str]]]
    blocks: list[SiteBlock] | None


def http_ports(options: dict[str, Any]) -> tuple[str, str]:
    hp = options.get("http_port")
    hsp = options.get("https_port")
    return (
        str(hp) if isinstance(hp, int) else str(DEFAULT_HTTP_PORT),
        str(hsp) if isinstance(hsp, int) else str(DEFAULT_HTTPS_PORT),
    )


# --- global options -----------------------------------------------------------


def evaluate_global_options(segments: list[list[Token]], options: dict[str, Any]) -> None:
    for segment in segments:
        name = segment[0].text
        fn = registry.global_options.get(name)
        if fn is None:
            tok = segment[0]
            raise CaddyfileError(f"{tok.file}:{tok.line}: unrecognized global option: {name}")
        try:
            val = fn(Dispenser(segment), options.get(name))
        except CaddyfileError as exc:
            raise CaddyfileError(f"parsing caddyfile tokens for '{name}': {exc}") from None
        if name in ("servers", "log", "default_bind"):
            # several instances fold into one list instead of overwriting each other
            existing = options.get(name) or []
            options[name] = existing + (val if isinstance(val, list) else [val])
            continue
        options[name] = val

    servers = options.get("servers")
    if servers:
        unstable_sort(servers, lambda a, b: len(a.listener_address) > len(b.listener_address))
        seen: set[str] = set()
        for entry in servers:
            if entry.listener_address in seen:
                raise CaddyfileError(
                    "cannot have 'servers' global options with duplicate listener "
                    f"addresses: {entry.listener_address}"
                )
            seen.add(entry.listener_address)


# --- named routes ---------------------------------------------------------------


@dataclass
class NamedRoute:
    route: dict
    invokes: list[str]


def extract_named_routes(
    blocks: list[Any], options: dict[str, Any], warnings: list[Warning]
) -> list[Any]:
    """Pull the `&(name)` blocks out of the list; their routes go into options."""
    named: dict[str, NamedRoute] = {}
    counter = Counter()
    remaining = []
    for sb in blocks:
        if not getattr(sb, "is_named_route", False):
            remaining.append(sb)
            continue
        if not sb.segments:
            continue
        name = sb.keys[0].text
        if name in named:
            raise CaddyfileError(f"cannot have duplicate named_routes: {name}")
        whole: list[Token] = []
        for seg in sb.segments:
            apply_to_segment(seg)
            whole.extend(seg)
        state: dict[str, Any] = {}
        h = Helper(Dispenser(whole), options, warnings, None, sb, counter, state)
        handler = parse_segment_as_subroute(h)
        routes = handler.get("routes", [])
        if len(routes) == 1 and not routes[0].get("match"):
            # a lone unmatched route is unwrapped, keeping only its first handler
            route = {"handle": [routes[0]["handle"][0]]}
        else:
            route = {"handle": [handler]}
        named[name] = NamedRoute(route, list(state.get(NAMED_ROUTE_KEY, {})))
    options["named_routes"] = named
    return remaining


# --- directives -------------------------------------------------------------------


def evaluate_site_directives(
    site: SiteBlock,
    options: dict[str, Any],
    warnings: list[Warning],
    counter: Counter,
    state: dict[str, Any],
    block: Any,
) -> None:
    matcher_defs: dict[str, GoMap] = {}
    for seg in site.segments:
        if seg and seg[0].text.startswith(MATCHER_PREFIX):
            parse_matcher_definitions(Dispenser(seg), matcher_defs)

    for seg in site.segments:
        name = seg[0].text
        if name.startswith(MATCHER_PREFIX):
            continue
        fn = registry.directives.get(name)
        if fn is None:
            tok = seg[0]
            msg = f"{tok.file}:{tok.line}: unrecognized directive: {name}"
            if not site.has_braces:
                msg += (
                    "\nDid you mean to define a second site? If so, you must use curly "
                    "braces around each site to separate their configurations."
                )
            raise CaddyfileError(msg)
        h = Helper(Dispenser(seg), options, warnings, matcher_defs, block, counter, state)
        try:
            results = fn(h)
        except CaddyfileError as exc:
            raise CaddyfileError(f"parsing caddyfile tokens for '{name}': {exc}") from None
        name = normalize_directive_name(name)
        for r in results:
            r.directive = name
            site.pile.setdefault(r.class_name, []).append(r)
        invoked = state.get(NAMED_ROUTE_KEY)
        if invoked:
            for route_name in invoked:
                site.pile.setdefault(NAMED_ROUTE_KEY, []).append(
                    ConfigValue(NAMED_ROUTE_KEY, route_name)
                )
            state[NAMED_ROUTE_KEY] = None


# --- listeners -------------------------------------------------------------------


def listeners_for_address(
    site: SiteBlock, addr: Address, options: dict[str, Any]
) -> dict[str, set[str]]:
    if addr.scheme == "wss":
        raise CaddyfileError(
            "the scheme wss:// is only supported in browsers; use https:// instead"
        )
    if addr.scheme == "ws":
        raise CaddyfileError("the scheme ws:// is only supported in browsers; use http:// instead")
    if addr.scheme not in ("https", "http", ""):
        raise CaddyfileError(f"unsupported URL scheme {addr.scheme}://")
    http_port, https_port = http_ports(options)
    ln_port = https_port
    if addr.port:
        ln_port = addr.port
    elif addr.scheme == "http":
        ln_port = http_port
    if (addr.scheme == "http" and ln_port == https_port) or (
        addr.scheme == "https" and ln_port == http_port
    ):
        raise CaddyfileError(f"[{addr}] scheme and port violate convention")

    binds = [
        cv.value for cv in site.pile.get("bind", []) if isinstance(cv.value, AddressesWithProtocols)
    ]
    if not binds:
        default_bind = options.get("default_bind")
        if default_bind:
            binds = [cv.value for cv in default_bind]
        else:
            binds = [AddressesWithProtocols([""], None)]

    listeners: dict[str, set[str]] = {}
    for b in binds:
        for ln in b.addresses:
            try:
                netw, host, _ = split_network_address(ln)
            except CaddyfileError as exc:
                raise CaddyfileError(f"splitting listener address: {exc}") from None
            try:
                na = parse_network_address(join_network_address(netw, host, ln_port))
            except CaddyfileError as exc:
                raise CaddyfileError(f"parsing network address: {exc}") from None
            key = str(na)
            # Caddy resets the protocol set whenever it sees the address again
            if str(addr) not in listeners:
                listeners[key] = set()
            for proto in b.protocols or []:
                listeners[key].add(proto)
    return listeners


def map_addresses(sites: list[SiteBlock], options: dict[str, Any]) -> dict[str, dict[str, list]]:
    out: dict[str, dict[str, list[SiteBlock]]] = {}
    for i, site in enumerate(sites):
        per_addr: dict[str, dict[str, list[tuple[Token, Address]]]] = {}
        for j, key in enumerate(site.keys):
            try:
                parsed = parse_address(key.text).normalize()
            except CaddyfileError as exc:
                raise CaddyfileError(f"parsing key: {exc}") from None
            try:
                listeners = listeners_for_address(site, parsed, options)
            except CaddyfileError as exc:
                raise CaddyfileError(
                    f"server block {i}, key {j} ({key.text}): determining listener address: {exc}"
                ) from None
            for addr, protocols in listeners.items():
                per_prot = per_addr.setdefault(addr, {})
                for prot in protocols or {""}:
                    per_prot.setdefault(prot, []).append((key, parsed))
        for addr in sorted(per_addr):
            target = out.setdefault(addr, {})
            for prot in sorted(per_addr[addr]):
                pairs = per_addr[addr][prot]
                target.setdefault(prot, []).append(
                    SiteBlock(
                        keys=[k for k, _ in pairs],
                        segments=site.segments,
                        pile=site.pile,
                        parsed_keys=[a for _, a in pairs],
                        origin=site.origin,
                        has_braces=site.has_braces,
                    )
                )
    return out


def _same_blocks(a: list[SiteBlock] | None, b: list[SiteBlock] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(x.same_site(y) for x, y in zip(a, b, strict=True))


def consolidate_addr_mappings(mapping: dict[str, dict[str, list[SiteBlock]]]) -> list[Pairing]:
    pairings: list[Pairing] = []
    for addr in sorted(mapping):
        for prot in sorted(mapping[addr]):
            blocks = mapping[addr].get(prot)
            listeners: dict[str, set[str]] = {}
            for other_addr, other_prots in mapping.items():
                for other_prot in list(other_prots):
                    if (addr == other_addr and prot == other_prot) or _same_blocks(
                        blocks, other_prots[other_prot]
                    ):
                        listeners.setdefault(other_addr, set()).add(other_prot)
                        del other_prots[other_prot]
            addresses = [(a, sorted(listeners[a])) for a in sorted(listeners)]
            pairings.append(Pairing(addresses, blocks))
    return pairings


# --- servers ---------------------------------------------------------------------


def _specificity(s: str) -> int:
    n = len(s.encode()) - s.count("*")
    while s:
        start = s.find("{")
        if start < 0:
            return n
        end = s.find("}", start) + 1
        if end <= start:
            return n
        n -= end - start
        s = s[end:]
    return n


@dataclass(frozen=True)
class _SiteFacts:
    """What Caddy's site sort compares, worked out once per site rather than per comparison."""

    host_specificity: int
    path_bytes: int
    wildcard: bool

    @classmethod
    def of(cls, site: SiteBlock) -> _SiteFacts:
        longest_host = longest_path = ""
        wildcard = False
        for addr in site.parsed_keys:
            if "*" in addr.host or addr.host == "":
                wildcard = True
            if _specificity(addr.host) > _specificity(longest_host):
                longest_host = addr.host
            if _specificity(addr.path) > _specificity(longest_path):
                longest_path = addr.path
        return cls(_specificity(longest_host), len(longest_path.encode()), wildcard)

    def less(self, other: _SiteFacts) -> bool:
        # catch-all sites go last, even after wildcard ones
        if self.host_specificity == 0:
            return False
        if other.host_specificity == 0:
            return True
        if self.wildcard != other.wildcard:
            return other.wildcard and not self.wildcard
        if self.host_specificity == other.host_specificity:
            return self.path_bytes > other.path_bytes
        return self.host_specificity > other.host_specificity


def _sort_sites(blocks: list[SiteBlock]) -> None:
    """Caddy's order of the sites of one server: most specific host first."""
    facts = {id(sb): _SiteFacts.of(sb) for sb in blocks}
    stable_sort(blocks, lambda a, b: facts[id(a)].less(facts[id(b)]))


def _ambiguous_key(blocks: list[SiteBlock]) -> str | None:
    """The first key (in Caddy's search order) that more than one of `blocks` has.

    Caddy compares every key with every other block's keys; counting the blocks that
    have each key finds the same one without the quadratic work on many sites.
    """
    owners: dict[str, int] = {}
    for sb in blocks:
        for key in {k.text for k in sb.keys}:
            owners[key] = owners.get(key, 0) + 1
    return next((k.text for sb in blocks for k in sb.keys if owners[k.text] > 1), None)


def compile_encoded_matcher_sets(site: SiteBlock) -> list[GoMap]:
    pairs: list[tuple[list[str], list[str]]] = []  # (hosts, paths)
    catch_all = False
    for addr in site.parsed_keys:
        chosen = None
        for pair in pairs:
            paths = pair[1]
            if (not paths and addr.path == "") or (len(paths) == 1 and paths[0] == addr.path):
                chosen = pair
                break
        if chosen is None:
            chosen = ([], [addr.path] if addr.path else [])
            pairs.append(chosen)
        if addr.host == "" and not catch_all:
            chosen[0].clear()
            catch_all = True
        if catch_all:
            continue
        if addr.host and addr.host not in chosen[0]:
            chosen[0].append(addr.host)
    sets = []
    for hosts, paths in pairs:
        ms = GoMap()
        if hosts:
            ms["host"] = list(hosts)
        if paths:
            ms["path"] = list(paths)
        if ms:
            sets.append(ms)
    return sets


def append_subroute(
    route_list: list[Route],
    routes: list[Route],
    errors: list[Route] | None,
    matcher_sets: list[GoMap],
    pairing: Pairing,
) -> list[Route]:
    """Caddy's appendSubrouteToRouteList."""
    if not matcher_sets and not routes and errors is None:
        return route_list
    wrap = True
    if not matcher_sets and len(pairing.blocks or []) == 1:
        # keep the site's own host matchers away from the top level (auto-HTTPS)
        wrap = any("host" in ms for r in routes for ms in (r.match or []))
    if wrap:
        route = Route(terminal=True)
        if matcher_sets:
            route.match = matcher_sets
        if routes or errors is not None:
            route.handle = [subroute_handler(routes, errors)]
        if route.match or route.handle:
            route_list.append(route)
    else:
        route_list.extend(routes)
    return route_list


def servers_from_pairings(
    pairings: list[Pairing], options: dict[str, Any], warnings: list[Warning], counter: Counter
) -> dict[str, dict]:
    from zeroserve.adapt.tlsapp import conn_policy_settings_empty, consolidate_conn_policies

    servers: dict[str, dict] = {}
    default_sni = options.get("default_sni") or ""
    fallback_sni = options.get("fallback_sni") or ""
    http_port, https_port = http_ports(options)
    auto_https = options.get("auto_https") or []
    named_routes: dict[str, NamedRoute] = options.get("named_routes", {})

    for i, p in enumerate(pairings):
        blocks = p.blocks or []
        ambiguous = _ambiguous_key(blocks)
        if ambiguous is not None:
            raise CaddyfileError(f"ambiguous site definition: {ambiguous}")

        srv: dict[str, Any] = {"listen": [a for a, _ in p.addresses] or None}
        protocols = [prots if any(pr != "" for pr in prots) else None for _, prots in p.addresses]
        if any(pr is not None for pr in protocols):
            srv["listen_protocols"] = protocols

        ah: dict[str, Any] | None = None
        for val in auto_https:
            key = {
                "off": "disable",
                "disable_redirects": "disable_redirects",
                "disable_certs": "disable_certificates",
                "ignore_loaded_certs": "ignore_loaded_certificates",
            }.get(val)
            if key:
                ah = ah or {}
                ah[key] = True

        for sb in blocks:
            for addr in sb.parsed_keys:
                if addr.path:
                    adaptlog.warn(
                        adaptlog.CADDYFILE_LOGGER,
                        "Using a path in a site address is "
                        "deprecated; please use the 'handle' directive instead",
                        address=str(addr),
                    )
        _sort_sites(blocks)

        has_catch_all_cp = address_qualifies_for_tls = False
        auto_https_adds_cp = ah is None or not ah.get("disable")

        logs: dict[str, Any] | None = None
        if any(sb.pile.get("custom_log") for sb in blocks):
            logs = {}

        for sb in blocks:
            for value in sb.pile.get(NAMED_ROUTE_KEY, []):
                _add_named_route(srv, value.value, named_routes)

        tls_policies: list[dict] = []
        unpoliced_hosts: list[list[str]] = []
        routes: list[Route] = []
        error_routes: list[Route] | None = None
        for sb in blocks:
            matcher_sets = compile_encoded_matcher_sets(sb)
            hosts = sb.hosts_from_keys(False)
            for host in hosts:
                if host in ("0.0.0.0", "::"):
                    adaptlog.warn(
                        adaptlog.CADDYFILE_LOGGER,
                        "Site block has an unspecified IP "
                        "address which only matches requests having that Host header; "
                        "you probably want the 'bind' directive to configure the socket",
                        address=host,
                    )
            forced = set(hosts) if "tls.force_automate" in sb.pile else set()

            cp_values = sb.pile.get("tls.connection_policy", [])
            if not cp_values and hosts:
                unpoliced_hosts.append(sorted(hosts))
            for cpv in cp_values:
                cp = cpv.value
                for h in list(hosts):
                    if h == default_sni:
                        hosts.append("")
                        cp["default_sni"] = default_sni
                        break
                    if h == fallback_sni:
                        hosts.append("")
                        cp["fallback_sni"] = fallback_sni
                        break
                if hosts:
                    hosts.sort()
                    cp["match"] = GoMap(sni=list(hosts))
                else:
                    cp["default_sni"] = default_sni
                    cp["fallback_sni"] = fallback_sni
                if not conn_policy_settings_empty(cp) or forced & set(hosts):
                    tls_policies.append(cp)
                    has_catch_all_cp = not hosts
                elif hosts:
                    unpoliced_hosts.append([h for h in hosts if h])

            for addr in sb.parsed_keys:
                if listeners_use_any_port_other_than(srv["listen"] or [], http_port):
                    if addr.scheme == "http" and addr.host:
                        ah = ah if ah is not None else {}
                        skip = ah.setdefault("skip", [])
                        if addr.host not in skip:
                            skip.append(addr.host)
                has_tls = bool(sb.pile.get("tls.connection_policy")) or (
                    addr.host != "" and (ah is None or addr.host not in ah.get("skip", []))
                )
                if addr.scheme == "https" or (
                    addr.scheme != "http" and addr.port != http_port and has_tls
                ):
                    address_qualifies_for_tls = True
                auto_https_adds_cp = auto_https_adds_cp and (
                    addr.port == https_port or (addr.port != http_port and addr.host != "")
                )

            for lw in sb.pile.get("listener_wrapper", []):
                srv.setdefault("listener_wrappers", []).append(lw.value)

            site_routes = build_subroute(
                sb.pile.get("route", []), counter, True, options.get("order")
            )
            routes = append_subroute(routes, site_routes, None, matcher_sets, p)

            err_vals = sb.pile.get("error_route")
            if err_vals:
                error_routes = error_routes if error_routes is not None else []
                stable_sort(err_vals, lambda a, b: not (not a.value[0].match and b.value[0].match))
                err_sub = [r for v in err_vals for r in v.value]
                error_routes = append_subroute(error_routes, err_sub, None, matcher_sets, p)

            log_hosts = sb.hosts_from_keys(True)
            for cval in sb.pile.get("custom_log", []):
                ncl: NamedCustomLog = cval.value
                if ncl.no_hostname:
                    continue
                assert logs is not None
                if sb.has_host_catch_all_key() and not ncl.hostnames:
                    logs["default_logger_name"] = ncl.name
                elif ncl.hostnames:
                    for h in ncl.hostnames:
                        logs.setdefault("logger_names", GoMap()).setdefault(h, []).append(ncl.name)
                else:
                    for h in log_hosts:
                        try:
                            host, _ = split_host_port(h)
                        except CaddyfileError:
                            host = h
                        logs.setdefault("logger_names", GoMap()).setdefault(host, []).append(
                            ncl.name
                        )
            if logs is not None and not sb.pile.get("custom_log"):
                if not hosts:
                    logs["skip_unmapped_hosts"] = True
                logs.setdefault("skip_hosts", []).extend(log_hosts)

        if logs is not None and logs.get("skip_hosts"):
            logs["skip_hosts"].sort()

        shield_from_wildcard_client_auth(tls_policies, unpoliced_hosts)

        srv["tls_connection_policies"] = tls_policies
        detect_conflicting_schemes(srv, blocks, options)

        if (
            address_qualifies_for_tls
            and not has_catch_all_cp
            and (tls_policies or not auto_https_adds_cp or default_sni or fallback_sni)
        ):
            tls_policies.append({"default_sni": default_sni, "fallback_sni": fallback_sni})

        try:
            srv["tls_connection_policies"] = consolidate_conn_policies(tls_policies)
        except CaddyfileError as exc:
            raise CaddyfileError(
                f"consolidating TLS connection policies for server {i}: {exc}"
            ) from None
        srv["routes"] = consolidate_routes(routes)
        if error_routes is not None:
            srv["errors"] = {"routes": error_routes}
        if ah is not None:
            srv["automatic_https"] = ah
        if logs is not None:
            srv["logs"] = logs
        servers[f"srv{i}"] = srv

    from zeroserve.adapt.options.servers import apply_server_options

    apply_server_options(servers, options)
    return servers


def shield_from_wildcard_client_auth(policies: list[dict], unpoliced: list[list[str]]) -> None:
    """Keep a wildcard site's client auth away from the specific names of other sites.

    Connection policies are first-match by SNI, so `*.example.com` with `client_auth` would
    also apply to `public.example.com` served by its own site without TLS settings. Such
    names get a policy of their own, placed right before the covering wildcard policy, with
    the wildcard's settings minus client authentication.
    """
    from zeroserve.adapt.tlsapp import match_wildcard

    for hosts in unpoliced:
        shields: dict[int, list[str]] = {}
        for host in hosts:
            for cp in policies:
                sni = (cp.get("match") or {}).get("sni") or []
                if cp.get("client_authentication") and any(
                    "*" in w and match_wildcard(host, w) for w in sni
                ):
                    shields.setdefault(id(cp), []).append(host)
                    break
        for cp_id, names in shields.items():
            index = next(i for i, cp in enumerate(policies) if id(cp) == cp_id)
            shield = {
                k: v
                for k, v in policies[index].items()
                if k not in ("match", "client_authentication")
            }
            shield["match"] = GoMap(sni=names)
            policies.insert(index, shield)


def _add_named_route(srv: dict[str, Any], name: str, named_routes: dict[str, NamedRoute]) -> None:
    """Put `name` and every route it invokes, transitively, into the server."""
    todo = [name]
    while todo:
        current = todo.pop(0)
        nr = named_routes.get(current)
        if nr is None:
            raise CaddyfileError(f"cannot invoke named route '{current}', which was not defined")
        table = srv.setdefault("named_routes", GoMap())
        if current in table:
            continue
        table[current] = nr.route
        todo.extend(nr.invokes)


def detect_conflicting_schemes(
    srv: dict[str, Any], blocks: list[SiteBlock], options: dict[str, Any]
) -> None:
    http_port, https_port = http_ports(options)
    mode = ""
    listen = "[" + " ".join(srv["listen"] or []) + "]"
    for sb in blocks:
        for addr in sb.parsed_keys:
            if addr.scheme == "http" or addr.port == http_port:
                want = "HTTP"
            elif (
                addr.scheme == "https" or addr.port == https_port or srv["tls_connection_policies"]
            ):
                want = "HTTPS"
            elif addr.host == "":
                want = "HTTP"
            else:
                continue
            if want == "HTTP":
                if mode == "HTTPS":
                    msg = (
                        f"server listening on {listen} is configured for HTTPS and cannot "
                        f"natively multiplex HTTP and HTTPS: {addr.original}"
                    )
                    if addr.scheme == "" and addr.host == "":
                        msg += " (try specifying https:// in the address)"
                    raise CaddyfileError(msg)
                if srv["tls_connection_policies"]:
                    raise CaddyfileError(
                        f"server listening on {listen} is HTTP, but attempts to "
                        "configure TLS connection policies"
                    )
                mode = "HTTP"
            else:
                if mode == "HTTP":
                    raise CaddyfileError(
                        f"server listening on {listen} is configured for HTTP and cannot "
                        f"natively multiplex HTTP and HTTPS: {addr.original}"
                    )
                mode = "HTTPS"


# --- output -----------------------------------------------------------------------


def server_json(srv: dict[str, Any]) -> dict:
    out = dict(srv)
    out["routes"] = [r.to_json() for r in srv.get("routes") or []]
    if srv.get("errors"):
        out["errors"] = {"routes": [r.to_json() for r in srv["errors"]["routes"]]}
    if srv.get("tls_connection_policies"):
        from zeroserve.adapt.tlsapp import conn_policy_json

        out["tls_connection_policies"] = [
            conn_policy_json(cp) for cp in srv["tls_connection_policies"]
        ]
    if srv.get("automatic_https"):
        out["automatic_https"] = struct(
            srv["automatic_https"],
            (
                "disable",
                "disable_redirects",
                "disable_certificates",
                "skip",
                "skip_certificates",
                "ignore_loaded_certificates",
            ),
        )
    if srv.get("logs") is not None:
        out["logs"] = struct(
            srv["logs"],
            (
                "default_logger_name",
                "logger_names",
                "skip_hosts",
                "skip_unmapped_hosts",
                "should_log_credentials",
                "trace",
            ),
        )
    if srv.get("named_routes"):
        out["named_routes"] = GoMap((k, v) for k, v in srv["named_routes"].items())
    return struct(out, SERVER_KEYS, keep=("strict_sni_host", "logs", "allow_0rtt"))


def setup(blocks: list[Any], options: dict[str, Any]) -> tuple[dict, list[Warning]]:
    """Caddy's ServerType.Setup: server blocks → (config, warnings)."""
    registry.load_all()
    warnings: list[Warning] = []
    counter = Counter()
    state: dict[str, Any] = {}

    for sb in blocks:
        for j, k in enumerate(sb.keys):
            if j == 0 and k.text.startswith("@"):
                raise CaddyfileError(
                    f"{k.file}:{k.line}: cannot define a matcher outside of a "
                    f"site block: '{k.text}'"
                )
            if k.text in registry.directives:
                raise CaddyfileError(
                    f"{k.file}:{k.line}: parsed '{k.text}' as a site address, but it is a "
                    "known directive; directives must appear in a site block"
                )

    if blocks and not blocks[0].keys:
        evaluate_global_options(blocks[0].segments, options)
        blocks = blocks[1:]

    blocks = extract_named_routes(blocks, options, warnings)

    sites: list[SiteBlock] = []
    for index, sb in enumerate(blocks):
        for seg in sb.segments:
            apply_to_segment(seg)
        if not sb.keys:
            raise CaddyfileError(
                "server block without any key is global configuration, and "
                "if used, it must be first"
            )
        site = SiteBlock(
            list(sb.keys), sb.segments, {}, origin=index, has_braces=getattr(sb, "has_braces", True)
        )
        evaluate_site_directives(site, options, warnings, counter, state, sb)
        sites.append(site)

    mapping = map_addresses(sites, options)
    pairings = consolidate_addr_mappings(mapping)
    servers = servers_from_pairings(pairings, options, warnings, counter)

    metrics = options.get("metrics")
    for srv in servers.values():
        if srv.get("metrics") is not None:
            per_host = bool((metrics or {}).get("per_host")) or bool(srv["metrics"].get("per_host"))
            metrics = {"per_host": True} if per_host else {}
            del srv["metrics"]

    from zeroserve.adapt.logs import build_logging
    from zeroserve.adapt.pkiapp import build_pki_app
    from zeroserve.adapt.tlsapp import build_tls_app

    http_app: dict[str, Any] = {}
    for key in ("http_port", "https_port"):
        if isinstance(options.get(key), int) and options[key]:
            http_app[key] = options[key]
    for key in ("grace_period", "shutdown_delay"):
        if options.get(key):
            http_app[key] = options[key]
    if servers:
        http_app["servers"] = GoMap((name, server_json(s)) for name, s in servers.items())
    if metrics is not None:
        http_app["metrics"] = _metrics_json(metrics)

    tls_app = build_tls_app(pairings, options, warnings)
    pki_app = build_pki_app(pairings, options, warnings)

    apps = GoMap()
    for value in options.values():
        if isinstance(value, registry.App):
            apps[value.name] = value.value
    if servers:
        apps["http"] = http_app
    if tls_app:
        apps["tls"] = tls_app
    if pki_app:
        apps["pki"] = pki_app

    config: dict[str, Any] = {}
    admin = options.get("admin")
    if options.get("persist_config") == "off":
        admin = dict(admin or {})
        admin["config"] = {"persist": False}
    if admin is not None:
        config["admin"] = _admin_json(admin)
    logging = build_logging([sb for p in pairings for sb in p.blocks or []], options)
    if logging is not None:
        config["logging"] = logging
    if options.get("storage") is not None:
        config["storage"] = options["storage"]
    config["apps"] = apps
    if not apps:
        del config["apps"]
    return config, warnings


def _metrics_json(metrics: dict[str, Any]) -> dict:
    return struct(metrics, ("per_host", "observe_catchall_hosts"))


def _admin_json(admin: dict[str, Any]) -> dict:
    out = struct(admin, ("disabled", "listen", "enforce_origin", "origins"))
    if "config" in admin:
        out["config"] = admin["config"]
    return out
