"""Walk Caddy's JSON config and place every rule in the lowest layer that keeps
Caddy's behaviour, saying why, and what would let an engine rule move down.

A route may leave the engine only if nothing but the packet decides it: its
matchers (and those of the routes around it) look at the source address alone,
its listener is a plain TCP port no other server shares, the source address is the
connection's own (no PROXY protocol), and no earlier route that stays in the
engine could answer the request first.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from zeroserve.plan.appliance import ApplianceConfig
from zeroserve.plan.lines import NO_LINE, LineIndex
from zeroserve.plan.model import (
    CookiePort,
    DenyRule,
    Layer,
    Listener,
    Placement,
    Plan,
    RateRule,
    Site,
    SynCookies,
)
from zeroserve.plan.placers import (
    Blocked,
    RouteContext,
    Sources,
    place_matcher,
    placer_for,
)


def parse_listen(address: str, server: str) -> list[Listener]:
    """Caddy's listen syntax: [network/]host:port[-port]; unix sockets give nothing."""
    network, sep, rest = address.partition("/")
    if not sep:
        network, rest = "tcp", address
    if network.startswith("unix") or network == "fd":
        return []
    network = "udp" if network.startswith("udp") else "tcp"
    host, _, ports = rest.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    first, _, last = ports.partition("-")
    if not first.isdigit() or not (last or first).isdigit():
        return []
    return [
        Listener(network, host, port, server) for port in range(int(first), int(last or first) + 1)
    ]


@dataclass
class _Walk:
    server_name: str
    server: dict
    ports: tuple[int, ...]
    hosts: set[str]
    lines: LineIndex | None
    plan: Plan
    rule_ids: Iterator[int]


_ON_ERROR = Blocked("runs only after a handler fails, which needs HTTP", "")
_NAMED = Blocked("a named route runs only where `invoke` calls it", "")
_ONE_MATCHER = "one address matcher per set would run in XDP"
_EARLIER = "put the abort before routes that answer (e.g. first in a `route` block)"


def _match(route: dict, server: dict) -> tuple[tuple[str, ...] | None, Blocked | None]:
    """(source prefixes, or None for every source; why it needs HTTP, or None)."""
    sets = route.get("match") or []
    if not sets:
        return None, None
    prefixes: list[str] = []
    for matcher_set in sets:
        verdicts = [place_matcher(name, value, server) for name, value in matcher_set.items()]
        for verdict in verdicts:
            if isinstance(verdict, Blocked):
                return None, verdict
        if len(verdicts) != 1:
            return None, Blocked("two address matchers in one set intersect", _ONE_MATCHER)
        verdict = verdicts[0]
        assert isinstance(verdict, Sources)
        prefixes.extend(verdict.prefixes)
    return tuple(prefixes), None


def _describe(handler: dict, route: dict) -> str:
    name = handler.get("handler", "?")
    what = "abort" if name == "static_response" and handler.get("abort") else name
    if name == "static_response" and not handler.get("abort"):
        what = f"respond {handler.get('status_code', 200)}"
    matchers = sorted({m for s in route.get("match") or [] for m in s})
    if not matchers:
        return what
    ranges = [
        r
        for s in route.get("match") or []
        for m in ("remote_ip", "client_ip")
        for r in (s.get(m) or {}).get("ranges", [])
    ]
    shown = ", ".join(ranges[:3]) + (", ..." if len(ranges) > 3 else "")
    return f"{what} @ {' '.join(matchers)}" + (f" {shown}" if shown else "")


def _walk(
    w: _Walk,
    routes: list[dict],
    path: str,
    outer_sources: tuple[str, ...] | None,
    outer: Blocked | None,
) -> bool:
    """Place every handler of routes; returns whether any of them may answer in the engine."""
    earlier = None  # why later routes cannot move: an engine route before them may answer
    may_answer = False
    for index, route in enumerate(routes):
        here = f"{path}.routes[{index}]"
        hosts = {h for s in route.get("match") or [] for h in (s.get("host") or [])}
        sources, needs = _match(route, w.server)
        if sources is not None and outer_sources is not None:
            needs = Blocked("address matchers nested in address matchers intersect", _ONE_MATCHER)
        blocker = outer or needs or earlier
        if sources is None:
            sources = outer_sources
        route_answers = False
        handlers = route.get("handle") or []
        for position, handler in enumerate(handlers):
            at = f"{here}.handle[{position}]" if len(handlers) > 1 else here
            name = handler.get("handler", "")
            if route_answers and not (outer or needs):
                # A handler before this one in the same route may already have answered.
                why = f"an earlier handler ({w.server_name}{here}) may answer first"
                blocker = Blocked(why, _EARLIER)
            if name == "subroute":
                saved, w.hosts = w.hosts, w.hosts | hosts
                inner = _walk(w, handler.get("routes") or [], at, sources, blocker)
                w.hosts = saved
                route_answers = route_answers or inner
                continue
            placer = placer_for(name)
            ctx = RouteContext(
                sources, blocker.reason if blocker else "", blocker.hint if blocker else "", w.ports
            )
            decision = placer.place(handler, ctx)
            line = NO_LINE
            if w.lines is not None:
                line = w.lines.find(w.hosts | hosts, set(w.ports), placer.directive_for(handler))
            if decision.layer is Layer.XDP:
                rule_id = next(w.rule_ids)
                if decision.deny:
                    w.plan.xdp.deny.append(DenyRule(rule_id, decision.deny, w.ports))
                for burst, window in decision.rate:
                    w.plan.xdp.rate.append(RateRule(rule_id, w.ports, burst, window))
                reason = f"{decision.reason} (rule {rule_id})"
            else:
                rule_id = 0
                reason = decision.reason
                route_answers = route_answers or not placer.passes_through
            w.plan.placements.append(
                Placement(
                    f"{w.server_name}{at}",
                    _describe(handler, route),
                    line,
                    decision.layer,
                    reason,
                    decision.hint,
                    rule_id,
                )
            )
        if route_answers:
            may_answer = True
            why = f"an earlier route ({w.server_name}{here}) may answer first"
            earlier = earlier or Blocked(why, _EARLIER)
        elif route.get("terminal"):
            why = f"an earlier terminal route ({w.server_name}{here}) ends the chain"
            earlier = earlier or Blocked(why, _EARLIER)
    return may_answer


def _server_blocker(server: dict, ports: tuple[int, ...], shared: set[int]) -> Blocked | None:
    if not ports:
        return Blocked("the server listens on no TCP or UDP port", "a TCP listener would")
    for wrapper in server.get("listener_wrappers") or []:
        if wrapper.get("wrapper") == "proxy_protocol":
            return Blocked(
                "the proxy_protocol listener wrapper takes the client address from a header",
                "without PROXY protocol it would run in XDP",
            )
    if shared & set(ports):
        return Blocked(
            f"port {min(shared & set(ports))} is shared with another server",
            "a port of its own would let it run in XDP",
        )
    return None


def build_plan(
    config: dict[str, Any],
    appliance: ApplianceConfig | None = None,
    lines: LineIndex | None = None,
) -> Plan:
    appliance = appliance or ApplianceConfig()
    plan = Plan(interfaces=appliance.interfaces, xdp_mode=appliance.xdp_mode)
    servers = ((config.get("apps") or {}).get("http") or {}).get("servers") or {}
    by_port: dict[int, set[str]] = defaultdict(set)
    for name, server in servers.items():
        for address in server.get("listen") or []:
            for listener in parse_listen(address, name):
                plan.listeners.append(listener)
                by_port[listener.port].add(name)
    shared = {port for port, names in by_port.items() if len(names) > 1}
    rule_ids = itertools.count(1)
    for name, server in servers.items():
        ports = tuple(sorted({lst.port for lst in plan.listeners if lst.server == name}))
        walk = _Walk(name, server, ports, set(), lines, plan, rule_ids)
        blocker = _server_blocker(server, ports, shared)
        _walk(walk, server.get("routes") or [], "", None, blocker)
        errors = (server.get("errors") or {}).get("routes") or []
        _walk(walk, errors, ".errors", None, _ON_ERROR)
        for route_name, route in (server.get("named_routes") or {}).items():
            _walk(walk, [route], f".named_routes.{route_name}", None, _NAMED)
    _place_listeners(plan, appliance)
    return plan


def _place_listeners(plan: Plan, appliance: ApplianceConfig) -> None:
    tcp = sorted(
        {(lst.address, lst.port) for lst in plan.listeners if lst.network == "tcp"},
        key=lambda a: (a[1], a[0]),
    )
    for address, port in tcp:
        plan.sock.dispatch.append(Listener("tcp", address, port, ""))
        plan.placements.append(
            Placement(
                f"listen {address}:{port}",
                "listener",
                NO_LINE,
                Layer.SOCK,
                "sk_lookup hands the address's connections to the listening socket",
            )
        )
    policies = {(s.address, s.port): s for s in appliance.sites}
    served = set(tcp)
    for key in policies:
        if key not in served and ("", key[1]) not in served:
            plan.warnings.append(f"site {key[0]}:{key[1]} in the appliance config serves nothing")
    for site_id, (address, port) in enumerate(tcp, start=1):
        policy = policies.get((address, port))
        dscp = policy.dscp if policy else None
        mss = (policy.mss_clamp if policy else None) or appliance.mss_clamp
        plan.tc.sites.append(Site(site_id, address, port, dscp, mss))
        marks = [f"DSCP {dscp}"] if dscp is not None else []
        marks += [f"MSS clamp {mss}"] if mss is not None else []
        plan.placements.append(
            Placement(
                f"site {address}:{port}",
                ", ".join(marks) or "counters",
                NO_LINE,
                Layer.TC,
                "clsact: per-site packet and byte counters"
                + (f"; egress {' and '.join(marks)}" if marks else ""),
            )
        )
    if appliance.drop_unserved_ports:
        open_ports = tuple(sorted({p for _, p in tcp} | set(appliance.allow_ports)))
        plan.xdp.drop_unserved = True
        plan.xdp.open_ports = open_ports
        plan.placements.append(
            Placement(
                "drop_unserved_ports",
                f"TCP SYNs to ports other than {', '.join(map(str, open_ports))}",
                NO_LINE,
                Layer.XDP,
                "appliance config: no site serves them",
            )
        )
    threshold = appliance.syn_cookie_threshold
    ports = tuple(sorted({p for _, p in tcp}))
    if threshold is not None and ports:
        plan.xdp.syncookies = SynCookies(threshold, tuple(_cookie_port(plan, p) for p in ports))
        plan.placements.append(
            Placement(
                "syn_cookies",
                f"TCP SYNs to {', '.join(map(str, ports))} past {threshold}/s per port",
                NO_LINE,
                Layer.XDP,
                "appliance config: XDP answers them with cookie SYN-ACKs",
            )
        )


def _cookie_port(plan: Plan, port: int) -> CookiePort:
    """The marks of port's sites that XDP's SYN-ACKs must carry as TC would."""
    sites = [s for s in plan.tc.sites if s.port == port]
    clamps = [s.mss for s in sites if s.mss is not None]
    dscps = {s.dscp for s in sites}
    return CookiePort(
        port, min(clamps) if clamps else None, dscps.pop() if len(dscps) == 1 else None
    )
