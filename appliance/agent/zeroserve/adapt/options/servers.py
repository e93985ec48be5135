"""The `servers` global option and how it lands on servers (Caddy's serveroptions.go).

Syntax::

    servers [<listener_address>] {
        name <name>
        listener_wrappers { <module> ... }
        timeouts {
            read_body|read_header|write|idle <duration>
            read_body_idle|write_idle <duration> [<min_rate>]
            write_max_chunk <size>
        }
        keepalive_interval|keepalive_idle <duration>
        keepalive_count <n>
        max_header_size <size>
        enable_full_duplex
        expected_underscore_headers|expected_dot_headers <headers...>
        log_credentials
        protocols [h1|h2|h2c|h3] ...
        strict_sni_host [on|insecure_off]
        trusted_proxies <module> ...
        trusted_proxies_strict
        trusted_proxies_unix
        client_ip_headers <headers...>
        metrics { per_host }
        trace
        0rtt off
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zeroserve.adapt import adaptlog
from zeroserve.adapt.httptype import SERVER_KEYS
from zeroserve.adapt.registry import global_option
from zeroserve.adapt.values import PRIVATE_RANGES, atoi, parse_bytes, parse_duration
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import module_object


@dataclass
class ServerOptions:
    listener_address: str = ""
    name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    log_credentials: bool = False
    trace: bool = False


def _duration(d: Dispenser, what: str) -> int:
    if not d.next_arg():
        raise d.arg_err()
    try:
        return parse_duration(d.val())
    except ValueError as exc:
        raise d.errf("parsing %s: %s", what, str(exc)) from None


def _listener_wrapper(d: Dispenser) -> dict:
    """caddy.listeners.* modules: tls, http_redirect, proxy_protocol."""
    name = d.val()
    body: dict[str, Any] = {}
    if name == "tls":
        pass
    elif name == "http_redirect":
        nesting = d.nesting()
        while d.next_block(nesting):
            if d.val() == "max_header_bytes":
                if not d.next_arg():
                    raise d.arg_err()
                body["max_header_bytes"] = parse_bytes(d.val())
            else:
                raise d.errf("unrecognized subdirective '%s'", d.val())
    elif name == "proxy_protocol":
        nesting = d.nesting()
        while d.next_block(nesting):
            sub = d.val()
            if sub == "timeout":
                body["timeout"] = _duration(d, "timeout")
            elif sub in ("allow", "deny"):
                body.setdefault(sub, []).extend(
                    r
                    for a in d.remaining_args()
                    for r in (PRIVATE_RANGES if a == "private_ranges" else [a])
                )
            elif sub == "fallback_policy":
                if not d.next_arg():
                    raise d.arg_err()
                body["fallback_policy"] = d.val()
            else:
                raise d.errf("unrecognized option: %s", sub)
    else:
        raise d.errf(
            "getting module named '%s': module not registered: caddy.listeners.%s", name, name
        )
    return module_object(body, "wrapper", name)


def _trusted_proxies(d: Dispenser) -> dict:
    if not d.next_arg():
        raise d.err("trusted_proxies expects an IP range source module name as its first argument")
    name = d.val()
    if name != "static":
        raise d.errf(
            "getting module named '%s': module not registered: http.ip_sources.%s", name, name
        )
    ranges: list[str] = []
    for arg in d.remaining_args():
        ranges.extend(PRIVATE_RANGES if arg == "private_ranges" else [arg])
    nesting = d.nesting()
    while d.next_block(nesting):
        if d.val() == "ranges":
            for arg in d.remaining_args():
                ranges.extend(PRIVATE_RANGES if arg == "private_ranges" else [arg])
        else:
            raise d.errf("unrecognized subdirective: %s", d.val())
    body = {"ranges": ranges} if ranges else {}
    return module_object(body, "source", "static")


_TIMEOUTS = {
    "read_body": "read_timeout",
    "read_header": "read_header_timeout",
    "write": "write_timeout",
    "idle": "idle_timeout",
    "read_body_idle": "read_idle_timeout",
    "write_idle": "write_idle_timeout",
}


def _parse_timeouts(d: Dispenser, f: dict[str, Any]) -> None:
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "write_max_chunk":
            if not d.next_arg():
                raise d.arg_err()
            try:
                f["max_write_chunk"] = parse_bytes(d.val())
            except ValueError as exc:
                raise d.errf("parsing write_max_chunk: %s", str(exc)) from None
            continue
        key = _TIMEOUTS.get(sub)
        if key is None:
            raise d.errf("unrecognized timeouts option '%s'", sub)
        f[key] = _duration(d, f"{sub} timeout duration")
        if sub in ("read_body_idle", "write_idle") and d.next_arg():
            rate = d.val()
            if not rate.lstrip("+-").isdigit() or not rate.isascii():
                raise d.errf(
                    "parsing %s min_rate bytes/second: strconv.ParseInt: parsing "
                    '"%s": invalid syntax',
                    sub,
                    rate,
                )
            f[sub.split("_")[0] + "_min_rate"] = int(rate)


@global_option("servers")
def parse_servers(d: Dispenser, existing: Any) -> ServerOptions:
    d.next()
    opts = ServerOptions()
    f = opts.fields
    if d.next_arg():
        opts.listener_address = d.val()
        if d.next_arg():
            raise d.arg_err()
    while d.next_block(0):
        sub = d.val()
        if sub == "name":
            if not opts.listener_address:
                raise d.err("cannot set a name for a server without a listener address")
            if not d.next_arg():
                raise d.arg_err()
            opts.name = d.val()
        elif sub == "listener_wrappers":
            nesting = d.nesting()
            while d.next_block(nesting):
                f.setdefault("listener_wrappers", []).append(_listener_wrapper(d))
        elif sub == "timeouts":
            _parse_timeouts(d, f)
        elif sub == "keepalive_interval":
            f["keepalive_interval"] = _duration(d, "keepalive interval duration")
        elif sub == "keepalive_idle":
            f["keepalive_idle"] = _duration(d, "keepalive idle duration")
        elif sub == "keepalive_count":
            if not d.next_arg():
                raise d.arg_err()
            try:
                f["keepalive_count"] = atoi(d.val())
            except ValueError as exc:
                raise d.errf("parsing keepalive count int: %s", str(exc)) from None
        elif sub == "max_header_size":
            args = d.remaining_args()
            if len(args) != 1:
                raise d.arg_err()
            try:
                f["max_header_bytes"] = parse_bytes(args[0])
            except ValueError as exc:
                raise d.errf("parsing max_header_size: %s", str(exc)) from None
        elif sub in ("expected_underscore_headers", "expected_dot_headers"):
            headers = d.remaining_args()
            if not headers:
                raise d.arg_err()
            f[sub] = headers
        elif sub == "0rtt":
            if not d.next_arg():
                raise d.arg_err()
            if d.val() != "off":
                raise d.errf("unsupported 0rtt argument '%s' (only 'off' is supported)", d.val())
            f["allow_0rtt"] = False
        elif sub == "enable_full_duplex":
            if d.next_arg():
                raise d.arg_err()
            f["enable_full_duplex"] = True
        elif sub == "log_credentials":
            if d.next_arg():
                raise d.arg_err()
            opts.log_credentials = True
        elif sub == "protocols":
            protos: list[str] = f.setdefault("protocols", [])
            for proto in d.remaining_args():
                if proto not in ("h1", "h2", "h2c", "h3"):
                    raise d.errf("unknown protocol '%s': expected h1, h2, h2c, or h3", proto)
                if proto in protos:
                    raise d.errf("protocol %s specified more than once", proto)
                protos.append(proto)
            if d.next_block(d.nesting()):
                raise d.arg_err()
        elif sub == "strict_sni_host":
            if d.next_arg() and d.val() not in ("insecure_off", "on"):
                raise d.errf(
                    "strict_sni_host only supports 'on' or 'insecure_off', got '%s'", d.val()
                )
            f["strict_sni_host"] = d.val() != "insecure_off"
        elif sub == "trusted_proxies":
            f["trusted_proxies"] = _trusted_proxies(d)
        elif sub == "trusted_proxies_strict":
            if d.next_arg():
                raise d.arg_err()
            f["trusted_proxies_strict"] = 1
        elif sub == "trusted_proxies_unix":
            if d.next_arg():
                raise d.arg_err()
            f["trusted_proxies_unix"] = True
        elif sub == "client_ip_headers":
            headers: list[str] = f.setdefault("client_ip_headers", [])
            for header in d.remaining_args():
                if header in headers:
                    raise d.errf("client IP header %s specified more than once", header)
                headers.append(header)
            if d.next_block(d.nesting()):
                raise d.arg_err()
        elif sub == "metrics":
            adaptlog.warn(
                adaptlog.DEFAULT_LOGGER,
                "The nested 'metrics' option inside `servers` "
                "is deprecated and will be removed in the next major version. Use "
                "the global 'metrics' option instead.",
            )
            metrics: dict[str, Any] = {}
            nesting = d.nesting()
            while d.next_block(nesting):
                if d.val() == "per_host":
                    metrics["per_host"] = True
            f["metrics"] = metrics
        elif sub == "trace":
            if d.next_arg():
                raise d.arg_err()
            opts.trace = True
        else:
            raise d.errf("unrecognized servers option '%s'", sub)
    return opts


# Server fields the sites and the other global options build; a `servers` block sets (or
# clears) every other one.
_BUILT_ELSEWHERE = frozenset(
    {
        "listen",
        "packet_conn_wrappers",
        "routes",
        "errors",
        "named_routes",
        "tls_connection_policies",
        "automatic_https",
        "logs",
        "listen_protocols",
    }
)
_APPLIED = tuple(k for k in SERVER_KEYS if k not in _BUILT_ELSEWHERE)


def apply_server_options(servers: dict[str, dict], options: dict[str, Any]) -> None:
    """Set each server's fields from the first `servers` option that applies to it."""
    server_opts: list[ServerOptions] = options.get("servers") or []
    if not server_opts:
        return
    names: set[str] = set()
    for opts in server_opts:
        if not opts.name:
            continue
        if opts.name in names:
            raise CaddyfileError(f"cannot use duplicate server name '{opts.name}'")
        names.add(opts.name)

    renames: dict[str, str] = {}
    for key, srv in servers.items():
        opts = next(
            (
                o
                for o in server_opts
                if not o.listener_address or o.listener_address in (srv.get("listen") or [])
            ),
            None,
        )
        if opts is None:
            continue
        for name in _APPLIED:
            if name in opts.fields:
                srv[name] = opts.fields[name]
            else:
                srv.pop(name, None)
        if opts.log_credentials:
            srv.setdefault("logs", {})["should_log_credentials"] = True
        if opts.trace:
            srv.setdefault("logs", {})["trace"] = True
        if opts.name:
            renames[key] = opts.name
    for old, new in renames.items():
        servers[new] = servers.pop(old)
