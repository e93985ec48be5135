"""`reverse_proxy`, `copy_response` and `copy_response_headers`.

From modules/caddyhttp/reverseproxy/caddyfile.go. `ReverseProxy` mirrors Caddy's
`reverseproxy.Handler` while it is unmarshalled, so `php_fastcgi` and
`forward_auth` can preset fields and reuse the whole reverse_proxy syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zeroserve.adapt import adaptlog
from zeroserve.adapt.addresses import split_host_port
from zeroserve.adapt.directives.header import HeaderOps, apply_header_op
from zeroserve.adapt.directives.response_handlers import ResponseHandling
from zeroserve.adapt.directives.reverse_proxy_lb import unmarshal_selection_policy
from zeroserve.adapt.directives.reverse_proxy_transport import TRANSPORTS
from zeroserve.adapt.directives.reverse_proxy_upstreams import (
    expand_upstream,
    parse_upstream_dial_address,
    unmarshal_upstream_source,
)
from zeroserve.adapt.helper import Helper
from zeroserve.adapt.matchers.nested import parse_nested_matcher_set
from zeroserve.adapt.modules import unmarshal_module
from zeroserve.adapt.registry import handler_directive
from zeroserve.adapt.values import (
    PRIVATE_RANGES,
    atoi,
    canonical_header_key,
    int64,
    parse_bytes,
    parse_duration,
    weak_string,
)
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError


@dataclass
class ReverseProxy:
    """Caddy's `reverseproxy.Handler` while it is being unmarshalled."""

    fields: dict = field(default_factory=dict)
    transport: dict | None = None
    request_headers: HeaderOps | None = None
    response_headers: HeaderOps | None = None
    rewrite: dict | None = None
    responses: ResponseHandling = field(default_factory=ResponseHandling)

    def to_json(self) -> dict:
        out: dict = {"handler": "reverse_proxy", **self.fields}
        if self.transport is not None:
            out["transport"] = self.transport
        headers: dict = {}
        if self.request_headers is not None:
            headers["request"] = self.request_headers.to_json()
        if self.response_headers is not None:
            headers["response"] = self.response_headers.to_json()
        if headers:
            out["headers"] = headers
        if self.rewrite is not None:
            out["rewrite"] = self.rewrite
        if self.responses.handlers:
            out["handle_response"] = self.responses.handlers
        return out

    def _section(self, *path: str) -> dict:
        obj = self.fields
        for key in path:
            obj = obj.setdefault(key, {})
        return obj

    def unmarshal(self, d: Dispenser) -> None:
        """Caddy's Handler.UnmarshalCaddyfile; `d` is at the directive name.

        Syntax::

            reverse_proxy [<matcher>] [<upstreams...>] {
                to      <upstreams...>
                dynamic <name> [...]
                lb_policy <name> [<options...>]
                lb_retries <retries>
                lb_try_duration <duration>
                lb_try_interval <interval>
                lb_retry_match <request-matcher>
                health_uri <uri>
                health_path <path>
                health_upstream <ip:port>
                health_port <port>
                health_interval <interval>
                health_passes <num>
                health_fails <num>
                health_timeout <duration>
                health_status <status>
                health_body <regexp>
                health_method <value>
                health_request_body <value>
                health_follow_redirects
                health_headers {
                    <field> [<values...>]
                }
                fail_duration <duration>
                max_fails <num>
                unhealthy_status <status...>
                unhealthy_latency <duration>
                unhealthy_request_count <num>
                flush_interval <duration>
                request_buffers <size>
                response_buffers <size>
                stream_buffer_size <size>
                stream_timeout <duration>
                stream_close_delay <duration>
                verbose_logs
                trusted_proxies [private_ranges] <ranges...>
                header_up   [+|-]<field> [<value|regexp> [<replacement>]]
                header_down [+|-]<field> [<value|regexp> [<replacement>]]
                method <method>
                rewrite <to>
                transport <name> {
                    ...
                }
                @name {
                    status <code...>
                    header <field> [<value>]
                }
                replace_status [<matcher>] <status_code>
                handle_response [<matcher>] {
                    <directives...>
                }
            }
        """
        common_scheme = ""
        transport: dict | None = None
        transport_name = ""

        def add_upstream(address: str) -> None:
            nonlocal common_scheme
            try:
                try:
                    pa = parse_upstream_dial_address(address)
                except ValueError as exc:
                    raise d.wrap_err(str(exc)) from None
                if pa.scheme == "wss":
                    raise d.errf(
                        "the scheme wss:// is only supported in browsers; use https:// instead"
                    )
                if pa.scheme == "ws":
                    raise d.errf(
                        "the scheme ws:// is only supported in browsers; use http:// instead"
                    )
                if pa.scheme not in ("https", "http", "h2c", ""):
                    raise d.errf("unsupported URL scheme %s://", pa.scheme)
                if common_scheme and pa.scheme != common_scheme:
                    raise d.errf(
                        "for now, all proxy upstreams must use the same scheme "
                        "(transport protocol); expecting '%s://' but got '%s://'",
                        common_scheme,
                        pa.scheme,
                    )
                common_scheme = pa.scheme
                try:
                    dials = expand_upstream(pa)
                except CaddyfileError as exc:
                    raise d.wrap_err(str(exc)) from None
            except CaddyfileError as exc:
                raise CaddyfileError(f"parsing upstream '{address}': {exc}") from None
            self.fields.setdefault("upstreams", []).extend({"dial": dial} for dial in dials)

        d.next()
        for address in d.remaining_args():
            add_upstream(address)

        while d.next_block(0):
            if self.responses.parse(d):
                continue
            sub = d.val()
            if sub == "to":
                args = d.remaining_args()
                if not args:
                    raise d.arg_err()
                for address in args:
                    add_upstream(address)
            elif sub == "dynamic":
                if not d.next_arg():
                    raise d.arg_err()
                self.fields["dynamic_upstreams"] = unmarshal_upstream_source(d)
            elif sub == "lb_policy":
                if not d.next_arg():
                    raise d.arg_err()
                if "selection_policy" in self.fields.get("load_balancing", {}):
                    raise d.err("load balancing selection policy already specified")
                policy = unmarshal_selection_policy(d)
                self._section("load_balancing")["selection_policy"] = policy
            elif sub == "lb_retries":
                retries = self._int(d, "bad lb_retries number '%s': %v")
                _put(self._section("load_balancing"), "retries", retries)
            elif sub == "lb_try_duration":
                lb = self._section("load_balancing") if d.next_arg() else None
                if lb is None:
                    raise d.arg_err()
                _put(lb, "try_duration", _duration(d, "bad duration value %s: %v"))
            elif sub == "lb_try_interval":
                lb = self._section("load_balancing") if d.next_arg() else None
                if lb is None:
                    raise d.arg_err()
                _put(lb, "try_interval", _duration(d, "bad interval value '%s': %v"))
            elif sub == "lb_retry_match":
                try:
                    matcher_set = parse_nested_matcher_set(d)
                except CaddyfileError as exc:
                    raise d.errf("failed to parse lb_retry_match: %v", exc) from None
                self._section("load_balancing").setdefault("retry_match", []).append(matcher_set)
            elif sub.startswith("health_"):
                self._active_health(d, sub)
            elif sub in (
                "max_fails",
                "fail_duration",
                "unhealthy_request_count",
                "unhealthy_status",
                "unhealthy_latency",
            ):
                self._passive_health(d, sub)
            elif sub in ("flush_interval", "stream_timeout", "stream_close_delay"):
                if not d.next_arg():
                    raise d.arg_err()
                # a bare integer is nanoseconds
                try:
                    value = atoi(d.val())
                except ValueError:
                    value = _duration(d, "bad duration value '%s': %v")
                _put(self.fields, sub, value)
            elif sub in ("request_buffers", "response_buffers", "stream_buffer_size"):
                if not d.next_arg():
                    raise d.arg_err()
                if d.val() == "unlimited":
                    size = -1
                else:
                    try:
                        size = int64(parse_bytes(d.val()))
                    except ValueError as exc:
                        raise d.errf("invalid byte size '%s': %v", d.val(), exc) from None
                if d.next_arg():
                    raise d.arg_err()
                _put(self.fields, sub, size)
            elif sub == "trusted_proxies":
                proxies = self.fields.setdefault("trusted_proxies", [])
                while d.next_arg():
                    proxies.extend(PRIVATE_RANGES if d.val() == "private_ranges" else [d.val()])
                if not proxies:
                    del self.fields["trusted_proxies"]
            elif sub == "header_up":
                if self.request_headers is None:
                    self.request_headers = HeaderOps()
                _warn_forwarded_header(self._header_op(d, self.request_headers))
            elif sub == "header_down":
                if self.response_headers is None:
                    self.response_headers = HeaderOps()
                self._header_op(d, self.response_headers)
            elif sub in ("method", "rewrite"):
                if not d.next_arg():
                    raise d.arg_err()
                if self.rewrite is None:
                    self.rewrite = {}
                _put(self.rewrite, "method" if sub == "method" else "uri", d.val())
                if d.next_arg():
                    raise d.arg_err()
            elif sub == "transport":
                if not d.next_arg():
                    raise d.arg_err()
                if self.transport is not None:
                    raise d.err("transport already specified")
                transport_name = d.val()
                transport = unmarshal_module(d, "http.reverse_proxy.transport", TRANSPORTS)
            elif sub == "verbose_logs":
                if self.fields.get("verbose_logs"):
                    raise d.err("verbose_logs already specified")
                self.fields["verbose_logs"] = True
            else:
                raise d.errf("unrecognized subdirective %s", sub)

        # an https or h2c upstream needs a transport that can say so
        if common_scheme in ("https", "h2c") and transport is None:
            transport, transport_name = {}, "http"
        if transport is not None:
            if transport_name == "http":
                if common_scheme == "https" and "tls" not in transport:
                    transport["tls"] = {}
                if common_scheme == "http" and "tls" in transport:
                    raise d.errf(
                        "upstream address scheme is HTTP but transport is configured "
                        "for HTTP+TLS (HTTPS)"
                    )
                if common_scheme == "h2c":
                    transport["versions"] = ["h2c", "2"]
            elif common_scheme == "https":
                raise d.errf(
                    "upstreams are configured for HTTPS but transport module does "
                    "not support TLS: %s",
                    "*fastcgi.Transport",
                )
            # the default transport needs no config
            if transport_name != "http" or transport:
                self.transport = {**transport, "protocol": transport_name}
        tls = transport_name == "http" and transport is not None and "tls" in transport
        _warn_upstream_host(self.request_headers, tls)

    def finalize(self, h: Helper) -> None:
        """Caddy's FinalizeUnmarshalCaddyfile: parse the handle_response blocks."""
        self.responses.handlers = self.responses.finalize(h)

    def _int(self, d: Dispenser, message: str) -> int:
        if not d.next_arg():
            raise d.arg_err()
        try:
            return atoi(d.val())
        except ValueError as exc:
            raise d.errf(message, d.val(), exc) from None

    def _active_health(self, d: Dispenser, sub: str) -> None:
        if sub == "health_headers":
            headers: dict[str, list[str]] = {}
            nesting = d.nesting()
            while d.next_block(nesting):
                key = d.val()
                headers.setdefault(key, []).extend(d.remaining_args() or [""])
            active = self._section("health_checks", "active")
            _put(active, "headers", headers)
            return
        if sub == "health_follow_redirects":
            if d.next_arg():
                raise d.arg_err()
            self._section("health_checks", "active")["follow_redirects"] = True
            return
        if sub not in _ACTIVE_FIELDS:
            raise d.errf("unrecognized subdirective %s", sub)
        if not d.next_arg():
            raise d.arg_err()
        active = self._section("health_checks", "active")
        value: object = d.val()
        if sub == "health_upstream":
            try:
                _, port = split_host_port(d.val())
            except CaddyfileError as exc:
                raise d.errf("health_upstream is malformed '%s': %v", d.val(), exc) from None
            try:
                atoi(port)
            except ValueError as exc:
                raise d.errf("bad port number '%s': %v", d.val(), exc) from None
        elif sub == "health_port":
            if active.get("upstream"):
                raise d.errf(
                    "the 'health_port' subdirective is ignored if 'health_upstream' is used!"
                )
            value = _atoi(d, "bad port number '%s': %v")
        elif sub == "health_interval":
            value = _duration(d, "bad interval value %s: %v")
        elif sub == "health_timeout":
            value = _duration(d, "bad timeout value %s: %v")
        elif sub == "health_status":
            text = d.val()
            if len(text) == 3 and text.endswith("xx"):
                text = text[:1]
            try:
                value = atoi(text)
            except ValueError as exc:
                raise d.errf("bad status value '%s': %v", d.val(), exc) from None
        elif sub == "health_passes":
            value = _atoi(d, "invalid passes count '%s': %v")
        elif sub == "health_fails":
            value = _atoi(d, "invalid fails count '%s': %v")
        elif sub == "health_path":
            adaptlog.deprecated_name("health_path", "health_uri", "subdirective")
        _put(active, _ACTIVE_FIELDS[sub], value)

    def _passive_health(self, d: Dispenser, sub: str) -> None:
        if sub == "unhealthy_status":
            args = d.remaining_args()
            if not args:
                raise d.arg_err()
            passive = self._section("health_checks", "passive")
            statuses = passive.setdefault("unhealthy_status", [])
            for arg in args:
                text = arg[:1] if len(arg) == 3 and arg.endswith("xx") else arg
                try:
                    statuses.append(atoi(text))
                except ValueError as exc:
                    raise d.errf("bad status value '%s': %v", d.val(), exc) from None
            return
        if not d.next_arg():
            raise d.arg_err()
        passive = self._section("health_checks", "passive")
        if sub == "max_fails":
            value = _atoi(d, "invalid maximum fail count '%s': %v")
        elif sub == "unhealthy_request_count":
            value = _atoi(d, "invalid maximum connection count '%s': %v")
        else:
            value = _duration(d, "bad duration value '%s': %v")
        _put(passive, sub, value)

    @staticmethod
    def _header_op(d: Dispenser, ops: HeaderOps) -> list[str]:
        """Apply one header_up/header_down line to `ops`; returns its arguments."""
        args = d.remaining_args()
        if not 1 <= len(args) <= 3:
            raise d.arg_err()
        value = args[1] if len(args) > 1 else ""
        replacement = args[2] if len(args) > 2 else None
        problem = apply_header_op(ops, None, args[0], value, replacement)
        if problem:
            raise d.err(problem)
        return args


# active health check subdirectives with one argument → their JSON field
_ACTIVE_FIELDS = {
    "health_uri": "uri",
    "health_path": "path",
    "health_upstream": "upstream",
    "health_port": "port",
    "health_method": "method",
    "health_request_body": "body",
    "health_interval": "interval",
    "health_timeout": "timeout",
    "health_status": "expect_status",
    "health_body": "expect_body",
    "health_passes": "passes",
    "health_fails": "fails",
}


_FORWARDED_HEADERS = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host")
_UPSTREAM_HOSTPORT = "{http.reverse_proxy.upstream.hostport}"


def _warn_forwarded_header(args: list[str]) -> None:
    """Caddy's advice when `header_up` sets an X-Forwarded-* field the proxy sets anyway."""
    # only a plain set warns: not +add, -delete or a regexp replacement
    name = canonical_header_key(args[0])
    if len(args) < 3 and name in _FORWARDED_HEADERS:
        adaptlog.warn(
            adaptlog.CADDYFILE_LOGGER,
            f"Unnecessary header_up {name}: the reverse "
            "proxy's default behavior is to pass headers to the upstream",
        )


def _warn_upstream_host(ops: HeaderOps | None, tls: bool) -> None:
    if tls and ops is not None and ops.set.get("Host") == [_UPSTREAM_HOSTPORT]:
        adaptlog.warn(
            adaptlog.CADDYFILE_LOGGER,
            "Unnecessary header_up Host: the reverse "
            "proxy's default behavior is to pass the configured upstream address to "
            "the upstream when proxying to HTTPS",
        )


def _put(obj: dict, key: str, value: object) -> None:
    # Go's omitempty: a zero value leaves the field out
    if value:
        obj[key] = value
    else:
        obj.pop(key, None)


def _atoi(d: Dispenser, message: str) -> int:
    try:
        return atoi(d.val())
    except ValueError as exc:
        raise d.errf(message, d.val(), exc) from None


def _duration(d: Dispenser, message: str) -> int:
    try:
        return parse_duration(d.val())
    except ValueError as exc:
        raise d.errf(message, d.val(), exc) from None


@handler_directive("reverse_proxy")
def parse_reverse_proxy(h: Helper) -> dict:
    """See `ReverseProxy.unmarshal` for the syntax."""
    rp = ReverseProxy()
    rp.unmarshal(h.dispenser)
    rp.finalize(h)
    return rp.to_json()


@handler_directive("copy_response")
def parse_copy_response(h: Helper) -> dict:
    """Syntax (only inside `handle_response`)::

    copy_response [<matcher>] [<status>] {
        status <status>
    }
    """
    h.next()
    out: dict = {"handler": "copy_response"}
    args = h.remaining_args()
    if len(args) == 1:
        try:
            if atoi(args[0]) > 0:
                out["status_code"] = weak_string(args[0])
                return out
        except ValueError:
            pass
    while h.next_block(0):
        if h.val() != "status":
            raise h.errf("unrecognized subdirective '%s'", h.val())
        if not h.next_arg():
            raise h.arg_err()
        if h.val():
            out["status_code"] = weak_string(h.val())
        else:
            out.pop("status_code", None)
    return out


@handler_directive("copy_response_headers")
def parse_copy_response_headers(h: Helper) -> dict:
    """Syntax (only inside `handle_response`)::

    copy_response_headers [<matcher>] {
        include <fields...>
        exclude <fields...>
    }
    """
    h.next()
    if h.remaining_args():
        raise h.arg_err()
    out: dict = {"handler": "copy_response_headers"}
    while h.next_block(0):
        sub = h.val()
        if sub not in ("include", "exclude"):
            raise h.errf("unrecognized subdirective '%s'", sub)
        out.setdefault(sub, []).extend(h.remaining_args())
        if not out[sub]:
            del out[sub]
    return out
