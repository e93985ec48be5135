"""`reverse_proxy` transports, `http.reverse_proxy.transport.*`: http and fastcgi.

From modules/caddyhttp/reverseproxy/caddyfile.go (HTTPTransport) and
reverseproxy/fastcgi/caddyfile.go (Transport). Each parser takes the segment
starting at the transport's name and returns its JSON without `protocol`.
"""

from __future__ import annotations

from collections.abc import Callable

from zeroserve.adapt import adaptlog
from zeroserve.adapt.capools import unmarshal_ca_pool
from zeroserve.adapt.modules import unmarshal_module
from zeroserve.adapt.values import atoi, int64, parse_bytes, parse_duration
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyjson import GoMap


def _word(d: Dispenser) -> str:
    """The next argument on the line, which must be there."""
    if not d.next_arg():
        raise d.arg_err()
    return d.val()


def _duration(d: Dispenser, message: str) -> int:
    try:
        return parse_duration(_word(d))
    except ValueError as exc:
        raise d.errf(message, d.val(), exc) from None


def _size(d: Dispenser, message: str) -> int:
    try:
        # Go converts the unsigned size to a signed int
        return int64(parse_bytes(_word(d)))
    except ValueError as exc:
        raise d.errf(message, d.val(), exc) from None


def _int(d: Dispenser) -> int:
    try:
        return atoi(_word(d))
    except ValueError as exc:
        raise d.errf("bad integer value '%s': %v", d.val(), exc) from None


def _set(out: dict, key: str, value: object) -> None:
    # Go's omitempty: zero values are left out
    if value:
        out[key] = value
    else:
        out.pop(key, None)


def _url_proxy(d: Dispenser) -> dict:
    # Caddy reads the token after the module name, whatever it is (even '{')
    d.next()
    d.next()
    return {"url": d.val()} if d.val() else {}


def _no_proxy(d: Dispenser) -> dict:
    d.next()
    return {}


NETWORK_PROXIES = {"url": _url_proxy, "none": _no_proxy}


def _sized(message: str) -> Callable[[Dispenser], object]:
    return lambda d: _size(d, message)


def _timed(message: str) -> Callable[[Dispenser], object]:
    return lambda d: _duration(d, message)


# The http transport's subdirectives that set one field from one argument, as Caddy's
# UnmarshalCaddyfile reads them: the field's object (the transport itself, "tls" or
# "keep_alive", made even when the value is empty), the field, and how the argument is read.
_HTTP_FIELDS: dict[str, tuple[str | None, str, Callable[[Dispenser], object]]] = {
    "read_buffer": (None, "read_buffer_size", _sized("invalid read buffer size '%s': %v")),
    "write_buffer": (None, "write_buffer_size", _sized("invalid write buffer size '%s': %v")),
    "read_timeout": (None, "read_timeout", _timed("invalid read timeout duration '%s': %v")),
    "write_timeout": (None, "write_timeout", _timed("invalid write timeout duration '%s': %v")),
    "max_response_header": (
        None,
        "max_response_header_size",
        _sized("invalid max response header size '%s': %v"),
    ),
    "dial_timeout": (None, "dial_timeout", _timed("bad timeout value '%s': %v")),
    "dial_fallback_delay": (
        None,
        "dial_fallback_delay",
        _timed("bad fallback delay value '%s': %v"),
    ),
    "response_header_timeout": (
        None,
        "response_header_timeout",
        _timed("bad timeout value '%s': %v"),
    ),
    "expect_continue_timeout": (
        None,
        "expect_continue_timeout",
        _timed("bad timeout value '%s': %v"),
    ),
    "tls_timeout": ("tls", "handshake_timeout", _timed("bad timeout value '%s': %v")),
    "tls_server_name": ("tls", "server_name", _word),
    "keepalive_interval": ("keep_alive", "probe_interval", _timed("bad interval value '%s': %v")),
    "keepalive_idle_conns": ("keep_alive", "max_idle_conns", _int),
    "keepalive_idle_conns_per_host": ("keep_alive", "max_idle_conns_per_host", _int),
    "max_conns_per_host": (None, "max_conns_per_host", _int),
    "local_address": (None, "local_address", _word),
}


def http_transport(d: Dispenser) -> dict:
    """Syntax::

    transport http {
        read_buffer             <size>
        write_buffer            <size>
        read_timeout            <duration>
        write_timeout           <duration>
        max_response_header     <size>
        proxy_protocol          v1|v2
        forward_proxy_url       <url>
        network_proxy           <module> ...
        dial_timeout            <duration>
        dial_fallback_delay     <duration>
        response_header_timeout <duration>
        expect_continue_timeout <duration>
        resolvers               <resolvers...>
        tls
        tls_client_auth <automate_name> | <cert_file> <key_file>
        tls_insecure_skip_verify
        tls_curves <curves...>
        tls_timeout <duration>
        tls_trusted_ca_certs <cert_files...>
        tls_trust_pool <module> ...
        tls_server_name <sni>
        tls_renegotiation <level>
        tls_except_ports <ports...>
        keepalive [off|<duration>]
        keepalive_interval <interval>
        keepalive_idle_conns <max_count>
        keepalive_idle_conns_per_host <count>
        versions <versions...>
        compression off
        max_conns_per_host <count>
        local_address <address>
    }
    """
    d.next()
    out: dict = {}

    def tls() -> dict:
        return out.setdefault("tls", {})

    while d.next_block(0):
        sub = d.val()
        if sub in _HTTP_FIELDS:
            section, key, read = _HTTP_FIELDS[sub]
            value = read(d)
            _set(out.setdefault(section, {}) if section else out, key, value)
        elif sub == "proxy_protocol":
            if not d.next_arg():
                raise d.arg_err()
            if d.val() not in ("v1", "v2"):
                raise d.errf("invalid proxy protocol version '%s'", d.val())
            out["proxy_protocol"] = d.val()
        elif sub == "forward_proxy_url":
            adaptlog.warn(
                adaptlog.DEFAULT_LOGGER,
                "The 'forward_proxy_url' field is deprecated. Use 'network_proxy <url>' instead.",
            )
            if not d.next_arg():
                raise d.arg_err()
            # deprecated spelling of `network_proxy url <url>`
            out["network_proxy"] = {
                "from": "url",
                **({"url": d.val()} if d.val() else {}),
            }
        elif sub == "network_proxy":
            if not d.next_arg():
                raise d.arg_err()
            name = d.val()
            out["network_proxy"] = {
                **unmarshal_module(d, "caddy.network_proxy", NETWORK_PROXIES),
                "from": name,
            }
        elif sub == "resolvers":
            addresses = d.remaining_args()
            if not addresses:
                raise d.errf("must specify at least one resolver address")
            out["resolver"] = {"addresses": addresses}
        elif sub == "tls":
            tls()
        elif sub == "tls_client_auth":
            t = tls()
            args = d.remaining_args()
            if len(args) == 1:
                _set(t, "client_certificate_automate", args[0])
            elif len(args) == 2:
                _set(t, "client_certificate_file", args[0])
                _set(t, "client_certificate_key_file", args[1])
            else:
                raise d.arg_err()
        elif sub == "tls_insecure_skip_verify":
            if d.next_arg():
                raise d.arg_err()
            tls()["insecure_skip_verify"] = True
        elif sub == "tls_curves":
            curves = d.remaining_args()
            if not curves:
                raise d.arg_err()
            tls()["curves"] = curves
        elif sub == "tls_trusted_ca_certs":
            adaptlog.warn(
                adaptlog.DEFAULT_LOGGER,
                "The 'tls_trusted_ca_certs' field is "
                "deprecated. Use the 'tls_trust_pool' field instead.",
            )
            files = d.remaining_args()
            if not files:
                raise d.arg_err()
            t = tls()
            if "ca" in t:
                raise d.err("cannot specify both 'tls_trust_pool' and 'tls_trusted_ca_certs")
            t["root_ca_pem_files"] = files
        elif sub == "tls_renegotiation":
            t = tls()
            if not d.next_arg():
                raise d.arg_err()
            if d.val() not in ("never", "once", "freely"):
                raise d.arg_err()
            t["renegotiation"] = d.val()
        elif sub == "tls_except_ports":
            t = tls()
            ports = d.remaining_args()
            if not ports:
                raise d.arg_err()
            t["except_ports"] = ports
        elif sub == "keepalive":
            if not d.next_arg():
                raise d.arg_err()
            ka = out.setdefault("keep_alive", {})
            if d.val() == "off":
                ka["enabled"] = False
            else:
                try:
                    _set(ka, "idle_timeout", parse_duration(d.val()))
                except ValueError as exc:
                    raise d.errf("bad duration value '%s': %v", d.val(), exc) from None
        elif sub == "versions":
            versions = d.remaining_args()
            if not versions:
                raise d.arg_err()
            out["versions"] = versions
        elif sub == "compression":
            if d.next_arg() and d.val() == "off":
                out["compression"] = False
        elif sub == "tls_trust_pool":
            if not d.next_arg():
                raise d.arg_err()
            pool = unmarshal_ca_pool(d)
            t = tls()
            if "root_ca_pem_files" in t:
                raise d.err("cannot specify both 'tls_trust_pool' and 'tls_trusted_ca_certs'")
            if "ca" in t:
                raise d.err('cannot specify "tls_trust_pool" twice in caddyfile')
            t["ca"] = pool
        else:
            raise d.errf("unrecognized subdirective %s", sub)
    return out


def fastcgi_transport(d: Dispenser) -> dict:
    """Syntax::

    transport fastcgi {
        root <path>
        split <at>
        env <key> <value>
        resolve_root_symlink
        dial_timeout <duration>
        read_timeout <duration>
        write_timeout <duration>
        capture_stderr
    }
    """
    d.next()
    out: dict = {}
    while d.next_block(0):
        sub = d.val()
        if sub == "root":
            _set(out, "root", _word(d))
        elif sub == "split":
            split = d.remaining_args()
            if not split:
                raise d.arg_err()
            out["split_path"] = split
        elif sub == "env":
            args = d.remaining_args()
            if len(args) != 2:
                raise d.arg_err()
            out.setdefault("env", GoMap())[args[0]] = args[1]
        elif sub in ("resolve_root_symlink", "capture_stderr"):
            if d.next_arg():
                raise d.arg_err()
            out[sub] = True
        elif sub in ("dial_timeout", "read_timeout", "write_timeout"):
            _set(out, sub, _duration(d, "bad timeout value %s: %v"))
        else:
            raise d.errf("unrecognized subdirective %s", sub)
    return out


TRANSPORTS = {"http": http_transport, "fastcgi": fastcgi_transport}
