"""Site addresses and listener addresses (Caddy's addresses.go and listeners.go).

Includes Go's `net.SplitHostPort`/`JoinHostPort` and the IP normalisation that
decide what a key like `[::1]:8443` or `example.com/api/*` means.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from zeroserve.caddyfile.errors import CaddyfileError

DEFAULT_HTTP_PORT = 80
DEFAULT_HTTPS_PORT = 443


class AddrError(CaddyfileError):
    """Go's *net.AddrError."""

    def __init__(self, addr: str, why: str) -> None:
        super().__init__(f"address {addr}: {why}" if addr else why)


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's net.SplitHostPort; raises AddrError like Go."""
    i = hostport.rfind(":")
    if i < 0:
        raise AddrError(hostport, "missing port in address")
    j = k = 0
    if hostport[0] == "[":
        end = hostport.find("]")
        if end < 0:
            raise AddrError(hostport, "missing ']' in address")
        if end + 1 == len(hostport):
            raise AddrError(hostport, "missing port in address")
        if end + 1 != i:
            if hostport[end + 1] == ":":
                raise AddrError(hostport, "too many colons in address")
            raise AddrError(hostport, "missing port in address")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise AddrError(hostport, "too many colons in address")
    if "[" in hostport[j:]:
        raise AddrError(hostport, "unexpected '[' in address")
    if "]" in hostport[k:]:
        raise AddrError(hostport, "unexpected ']' in address")
    return host, hostport[i + 1 :]


def join_host_port(host: str, port: str) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def go_atoi(text: str) -> int:
    """strconv.Atoi; raises CaddyfileError with Go's message."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise CaddyfileError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise CaddyfileError(f'strconv.Atoi: parsing "{text}": value out of range')
    return value


@dataclass(frozen=True)
class Address:
    """A parsed site address: `[scheme://][host][:port][/path]`."""

    original: str = ""
    scheme: str = ""
    host: str = ""
    port: str = ""
    path: str = ""

    def __str__(self) -> str:
        if self.host == "" and self.port == "":
            return ""
        scheme = self.scheme
        if scheme == "":
            scheme = "https" if self.port == str(DEFAULT_HTTPS_PORT) else "http"
        s = scheme + "://"
        if self.port != "" and (
            (scheme == "https" and self.port != str(DEFAULT_HTTPS_PORT))
            or (scheme == "http" and self.port != str(DEFAULT_HTTP_PORT))
        ):
            s += join_host_port(self.host, self.port)
        else:
            s += self.host
        return s + self.path

    def normalize(self) -> Address:
        host = self.host.strip()
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
            host = _go_ipv6_string(ip)
        return Address(
            self.original,
            lower_except_placeholders(self.scheme),
            lower_except_placeholders(host),
            self.port,
            self.path,
        )


def _go_ipv6_string(ip: ipaddress.IPv6Address) -> str:
    # Python's compressed form matches Go's netip for plain IPv6 addresses
    return ip.compressed


def parse_address(text: str) -> Address:
    """Caddy's ParseAddress."""
    text = text[:4096]
    remaining = text.strip()
    original = remaining
    scheme = ""
    if "://" in remaining:
        scheme, remaining = remaining.split("://", 1)
    host_part, slash, rest = remaining.partition("/")
    try:
        host, port = split_host_port(host_part)
    except AddrError:
        try:
            host, port = split_host_port(host_part + ":")
        except AddrError:
            host, port = host_part, ""
    path = "/" + rest if slash else ""
    if port != "":
        try:
            num = go_atoi(port)
        except CaddyfileError as exc:
            raise CaddyfileError(f"invalid port '{port}': {exc}") from None
        if num < 0 or num > 65535:
            raise CaddyfileError(f"port {num} is out of range")
    return Address(original, scheme, host, port, path)


def lower_except_placeholders(s: str) -> str:
    out = []
    escaped = in_placeholder = False
    for ch in s:
        if ch == "\\" and not escaped:
            escaped = True
            out.append(ch)
            continue
        if ch == "{" and not escaped:
            in_placeholder = True
        if ch == "}" and in_placeholder and not escaped:
            in_placeholder = False
        out.append(ch if in_placeholder else ch.lower())
        escaped = False
    return "".join(out)


# --- listener (network) addresses: caddy's listeners.go ---------------------

MAX_PORT_SPAN = 65535


def is_unix_network(network: str) -> bool:
    return network in ("unix", "unixgram", "unixpacket")


def is_fd_network(network: str) -> bool:
    return network.startswith("fd")


def split_network_address(addr: str) -> tuple[str, str, str]:
    """caddy.SplitNetworkAddress → (network, host, port)."""
    network = ""
    before, slash, after = addr.partition("/")
    if slash:
        network = before.strip().lower()
        addr = after
        if is_unix_network(network) or is_fd_network(network):
            return network, addr, ""
    try:
        host, port = split_host_port(addr)
        return network, host, port
    except AddrError as first:
        try:
            host, _ = split_host_port(join_host_port(addr.strip("[]"), "0"))
            return network, host, ""
        except AddrError as second:
            raise CaddyfileError(f"{first}\n{second}") from None


def join_network_address(network: str, host: str, port: str) -> str:
    a = network + "/" if network else ""
    if (host != "" and port == "") or is_unix_network(network) or is_fd_network(network):
        a += host
    elif port != "":
        a += join_host_port(host, port)
    return a


@dataclass(frozen=True)
class NetworkAddress:
    network: str
    host: str
    start_port: int = 0
    end_port: int = 0

    def port(self) -> str:
        if self.start_port == self.end_port:
            return str(self.start_port)
        return f"{self.start_port}-{self.end_port}"

    def __str__(self) -> str:
        network = self.network
        if network == "tcp" and (self.host != "" or self.port() != ""):
            network = ""
        if is_unix_network(self.network) or is_fd_network(self.network):
            return join_network_address(network, self.host, "")
        return join_network_address(network, self.host, self.port())


def _parse_uint16(text: str, what: str) -> int:
    if not text or not text.isascii() or not text.isdigit():
        raise CaddyfileError(
            f'invalid {what} port: strconv.ParseUint: parsing "{text}": invalid syntax'
        )
    value = int(text)
    if value > 65535:
        raise CaddyfileError(
            f'invalid {what} port: strconv.ParseUint: parsing "{text}": value out of range'
        )
    return value


def parse_network_address(addr: str, default_network: str = "tcp") -> NetworkAddress:
    network, host, port = split_network_address(addr)
    if network == "":
        network = default_network
    if is_unix_network(network) or is_fd_network(network):
        return NetworkAddress(network, host)
    if port == "":
        return NetworkAddress(network, host, 0, 0)
    before, dash, after = port.partition("-")
    if not dash:
        after = before
    start = _parse_uint16(before, "start")
    end = _parse_uint16(after, "end")
    if end < start:
        raise CaddyfileError("end port must not be less than start port")
    if end - start > MAX_PORT_SPAN:
        raise CaddyfileError(f"port range exceeds {MAX_PORT_SPAN} ports")
    return NetworkAddress(network, host, start, end)


def listeners_use_any_port_other_than(addresses: list[str], other_port: str) -> bool:
    try:
        other = int(other_port)
    except ValueError:
        return False
    for ln in addresses:
        try:
            na = parse_network_address(ln)
        except CaddyfileError:
            continue
        if other > na.end_port or other < na.start_port:
            return True
    return False
