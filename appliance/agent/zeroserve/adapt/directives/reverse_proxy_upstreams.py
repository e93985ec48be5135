"""Upstreams of `reverse_proxy`: static dial addresses and dynamic upstream sources.

Static addresses follow modules/caddyhttp/reverseproxy/addresses.go (including the
subset of Go's url.Parse it relies on); the `http.reverse_proxy.upstreams.*`
sources (a, srv, multi) follow reverseproxy/caddyfile.go.
"""

from __future__ import annotations

from dataclasses import dataclass

from zeroserve.adapt.addresses import (
    is_fd_network,
    is_unix_network,
    join_host_port,
    join_network_address,
    parse_network_address,
    split_network_address,
)
from zeroserve.adapt.modules import unmarshal_module
from zeroserve.adapt.values import parse_duration
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyfile.gofmt import go_quote


@dataclass
class ParsedAddr:
    network: str = ""
    scheme: str = ""
    host: str = ""
    port: str = ""

    def dial_addr(self) -> str:
        # the network is written only when the user gave one
        if self.network:
            return join_network_address(self.network, self.host, self.port)
        if self.port == "" and "{" in self.host:
            return self.host
        return join_host_port(self.host, self.port)

    def ranged_port(self) -> bool:
        return "-" in self.port

    def replaceable_port(self) -> bool:
        return "{" in self.port and "}" in self.port


def parse_upstream_dial_address(addr: str) -> ParsedAddr:
    """reverseproxy.parseUpstreamDialAddress; raises ValueError with Caddy's message."""
    network = scheme = host = port = ""
    if "://" in addr:
        if "{" in addr:
            raise ValueError(
                "due to parsing difficulties, placeholders are not allowed "
                "when an upstream address contains a scheme"
            )
        try:
            url = _GoURL.parse(addr)
        except ValueError as exc:
            # a port range is not a valid URL port; parse with a stand-in port
            if "invalid port" not in str(exc) or "-" not in str(exc):
                raise ValueError(f"parsing upstream URL: {exc}") from None
            port_range = addr[addr.rfind(":") + 1 :]
            if port_range.count("-") != 1:
                raise ValueError(
                    f'parsing upstream URL: parse "{addr}": port range invalid: {port_range}'
                ) from None
            try:
                url = _GoURL.parse(addr.replace(port_range, "0"))
            except ValueError as exc2:
                raise ValueError(f"parsing upstream URL: {exc2}") from None
            port = port_range
        if port == "":
            port = url.port()
        if url.path or url.raw_query or url.fragment:
            raise ValueError(
                "for now, URLs for proxy upstreams only support scheme, host, and port components"
            )
        for bad_scheme, bad_port, name in (
            ("http", "443", "HTTPS"),
            ("https", "80", "HTTP"),
            ("h2c", "443", "HTTPS"),
        ):
            if url.scheme == bad_scheme and port == bad_port:
                raise ValueError(
                    f"upstream address has conflicting scheme ({bad_scheme}://) "
                    f"and port (:{bad_port}, the {name} port)"
                )
        if port == "":
            if url.scheme in ("", "http", "h2c"):
                port = "80"
            elif url.scheme == "https":
                port = "443"
        scheme, host = url.scheme, url.hostname()
    else:
        try:
            network, host, port = split_network_address(addr)
        except CaddyfileError:
            before, slash, _ = addr.partition("/")
            network = before.strip().lower() if slash else ""
            host, port = addr, ""
        # a bare host means port 80, but a placeholder host likely carries its own port
        if (
            port == ""
            and "{" not in host
            and not is_unix_network(network)
            and not is_fd_network(network)
        ):
            port = "80"
    # a special network to combine a unix socket with h2c
    if network == "unix+h2c":
        network, scheme = "unix", "h2c"
    return ParsedAddr(network, scheme, host, port)


def expand_upstream(pa: ParsedAddr) -> list[str]:
    """The dial addresses for one parsed upstream (a port range gives several)."""
    dial = pa.dial_addr()
    if pa.replaceable_port():
        return [dial]
    net_addr = parse_network_address(dial)
    if is_unix_network(pa.network) or not pa.ranged_port():
        return [dial]
    return [
        join_network_address("", net_addr.host, str(p))
        for p in range(net_addr.start_port, net_addr.end_port + 1)
    ]


@dataclass
class _GoURL:
    """The parts of Go's net/url.URL that upstream parsing looks at."""

    scheme: str
    host: str
    path: str
    raw_query: str
    fragment: str

    @classmethod
    def parse(cls, raw: str) -> _GoURL:
        def fail(why: str) -> ValueError:
            return ValueError(f"parse {go_quote(raw)}: {why}")

        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
            raise fail("net/url: invalid control character in URL")
        rest, _, fragment = raw.partition("#")
        scheme = ""
        for i, ch in enumerate(rest):
            if ch.isascii() and ch.isalpha():
                continue
            if ch.isascii() and (ch.isdigit() or ch in "+-."):
                if i == 0:
                    break
                continue
            if ch == ":":
                if i == 0:
                    raise fail("missing protocol scheme")
                scheme, rest = rest[:i].lower(), rest[i + 1 :]
            break
        if rest.endswith("?") and rest.count("?") == 1:
            rest, query = rest[:-1], ""
        else:
            rest, _, query = rest.partition("?")
        host = ""
        if rest.startswith("//"):
            authority, slash, path = rest[2:].partition("/")
            rest = slash + path
            try:
                host = cls._parse_host(authority.rpartition("@")[2])
            except ValueError as exc:
                raise fail(str(exc)) from None
        return cls(scheme, host, rest, query, fragment)

    @staticmethod
    def _parse_host(host: str) -> str:
        if host.startswith("["):
            end = host.rfind("]")
            if end < 0:
                raise ValueError("missing ']' in host")
            colon_port = host[end + 1 :]
        else:
            colon = host.rfind(":")
            colon_port = host[colon:] if colon >= 0 else ""
        if colon_port and not (
            colon_port[0] == ":" and colon_port[1:].isdigit() or colon_port == ":"
        ):
            raise ValueError(f"invalid port {go_quote(colon_port)} after host")
        for ch in host:
            if ch.isascii() and not (ch.isalnum() or ch in "-._~!$&'()*+,;=:[]<>\"%"):
                raise ValueError(f"invalid character {go_quote(ch)} in host name")
        return host

    def _split(self) -> tuple[str, str]:
        colon = self.host.rfind(":")
        host, port = self.host, ""
        if colon >= 0 and (self.host[colon + 1 :].isdigit() or colon == len(self.host) - 1):
            host, port = self.host[:colon], self.host[colon + 1 :]
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return host, port

    def hostname(self) -> str:
        return self._split()[0]

    def port(self) -> str:
        return self._split()[1]


def _duration(d: Dispenser, message: str) -> int:
    try:
        return parse_duration(d.val())
    except ValueError as exc:
        raise d.errf(message, d.val(), exc) from None


def _resolvers(d: Dispenser) -> dict:
    addresses = d.remaining_args()
    if not addresses:
        raise d.errf("must specify at least one resolver address")
    return {"addresses": addresses}


def _set(out: dict, key: str, value: object) -> None:
    if value:
        out[key] = value
    else:
        out.pop(key, None)


def _srv(d: Dispenser) -> dict:
    """Syntax::

    dynamic srv [<name>] {
        service             <service>
        proto               <proto>
        name                <name>
        refresh             <interval>
        resolvers           <resolvers...>
        dial_timeout        <timeout>
        dial_fallback_delay <timeout>
        grace_period        <duration>
    }
    """
    d.next()
    args = d.remaining_args()
    if len(args) > 1:
        raise d.arg_err()
    out: dict = {}
    if args:
        _set(out, "name", args[0])
    while d.next_block(0):
        sub = d.val()
        if sub in ("service", "proto", "name"):
            if not d.next_arg():
                raise d.arg_err()
            if out.get(sub):
                raise d.errf("srv %s has already been specified", sub)
            _set(out, sub, d.val())
        elif sub == "grace_period":
            if not d.next_arg():
                raise d.arg_err()
            _set(out, "grace_period", _duration(d, "bad grace period value '%s': %v"))
        elif not _lookup_option(d, out, sub):
            raise d.errf("unrecognized srv option '%s'", sub)
    return out


def _lookup_option(d: Dispenser, out: dict, sub: str) -> bool:
    """Parse a DNS lookup option that `dynamic srv` and `dynamic a` share; False if not one."""
    if sub == "resolvers":
        out["resolver"] = _resolvers(d)
        return True
    if sub not in ("refresh", "dial_timeout", "dial_fallback_delay"):
        return False
    if not d.next_arg():
        raise d.arg_err()
    if sub == "refresh":
        try:
            _set(out, "refresh", parse_duration(d.val()))
        except ValueError as exc:
            raise d.errf("parsing refresh interval duration: %v", exc) from None
    elif sub == "dial_timeout":
        _set(out, "dial_timeout", _duration(d, "bad timeout value '%s': %v"))
    else:
        _set(out, "dial_fallback_delay", _duration(d, "bad delay value '%s': %v"))
    return True


def _a(d: Dispenser) -> dict:
    """Syntax::

    dynamic a [<name> <port>] {
        name                <name>
        port                <port>
        refresh             <interval>
        resolvers           <resolvers...>
        dial_timeout        <timeout>
        dial_fallback_delay <timeout>
        versions            ipv4|ipv6
    }
    """
    d.next()
    args = d.remaining_args()
    if len(args) > 2:
        raise d.arg_err()
    out: dict = {}
    if args:
        _set(out, "name", args[0])
        if len(args) == 2:
            _set(out, "port", args[1])
    while d.next_block(0):
        sub = d.val()
        if sub in ("name", "port"):
            if not d.next_arg():
                raise d.arg_err()
            if out.get(sub):
                raise d.errf("a %s has already been specified", sub)
            _set(out, sub, d.val())
        elif sub == "versions":
            versions = d.remaining_args()
            if not versions:
                raise d.errf("must specify at least one version")
            chosen = out.setdefault("versions", {})
            for version in versions:
                if version not in ("ipv4", "ipv6"):
                    raise d.errf("unsupported version: '%s'", version)
                chosen[version] = True
        elif not _lookup_option(d, out, sub):
            raise d.errf("unrecognized a option '%s'", sub)
    return out


def _multi(d: Dispenser) -> dict:
    """Syntax::

    dynamic multi {
        <source> [...]
    }
    """
    d.next()
    if d.next_arg():
        raise d.arg_err()
    sources: list[dict] = []
    while d.next_block(0):
        sources.append(unmarshal_upstream_source(d))
    return {"sources": sources} if sources else {}


UPSTREAM_SOURCES = {"a": _a, "srv": _srv, "multi": _multi}


def unmarshal_upstream_source(d: Dispenser) -> dict:
    """The dynamic upstream source named by the current token, with its `source` field."""
    name = d.val()
    return {**unmarshal_module(d, "http.reverse_proxy.upstreams", UPSTREAM_SOURCES), "source": name}
