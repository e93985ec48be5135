"""Caddyfile unmarshalers of the TLS modules that `tls` and the global options reach into.

Certificate issuers (tls.issuance.acme / internal / zerossl), certificate managers
(tls.get_certificate.*), client authentication with its trust pools and verifiers,
and ACME preferred chains. Values are plain dicts; issuers carry a "module" key.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from zeroserve.adapt import adaptlog
from zeroserve.adapt.capools import unmarshal_ca_pool
from zeroserve.adapt.values import atoi, parse_duration
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import GoMap, module_object, struct


def arg(d: Dispenser) -> str:
    if not d.next_arg():
        raise d.arg_err()
    return d.val()


def single_arg(d: Dispenser) -> str:
    args = d.remaining_args()
    if len(args) != 1:
        raise d.arg_err()
    return args[0]


def duration_arg(d: Dispenser, what: str) -> int:
    value = single_arg(d)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise d.errf("invalid %s duration %s: %s", what, value, str(exc)) from None


def module_not_registered(d: Dispenser, module_id: str) -> CaddyfileError:
    return d.errf("getting module named '%s': module not registered: %s", module_id, module_id)


def dns_provider(d: Dispenser) -> GoMap:
    """A `dns.providers.*` module; the standard distribution has none."""
    name = arg(d)
    raise module_not_registered(d, "dns.providers." + name)


def _dns_config(issuer: dict[str, Any]) -> dict[str, Any]:
    return issuer.setdefault("challenges", {}).setdefault("dns", {})


def parse_preferred_chains(d: Dispenser) -> dict[str, Any]:
    """caddytls.ParseCaddyfilePreferredChainsOptions (cursor on the option's name)."""
    chains: dict[str, Any] = {}
    args = d.remaining_args()
    if len(args) == 1 and args[0] == "smallest":
        chains["smallest"] = True
    elif args:
        raise d.arg_err()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub in ("root_common_name", "any_common_name"):
            values = d.remaining_args()
            if not values:
                raise d.arg_err()
            chains[sub] = values
        else:
            raise d.errf("Received unrecognized parameter '%s'", sub)
    if chains.get("smallest") and (chains.get("root_common_name") or chains.get("any_common_name")):
        raise d.err(
            "Setting 'smallest' preferred chain option with 'root_common_name' or "
            "'any_common_name' is not supported"
        )
    return chains


def parse_acme_issuer(d: Dispenser) -> dict[str, Any]:
    """`acme [<directory_url>] { ... }` (cursor on the module name)."""
    iss: dict[str, Any] = {"module": "acme"}
    if d.next_arg():
        iss["ca"] = d.val()
        if d.next_arg():
            raise d.arg_err()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "lifetime":
            iss["certificate_lifetime"] = duration_arg(d, "lifetime")
        elif sub == "dir":
            if iss.get("ca"):
                raise d.errf("ACME CA already set to %s", iss["ca"])
            iss["ca"] = arg(d)
        elif sub == "test_dir":
            iss["test_ca"] = arg(d)
        elif sub == "email":
            iss["email"] = arg(d)
        elif sub == "profile":
            iss["profile"] = arg(d)
        elif sub == "timeout":
            iss["acme_timeout"] = duration_arg(d, "timeout")
        elif sub == "disable_http_challenge":
            if d.next_arg():
                raise d.arg_err()
            iss.setdefault("challenges", {}).setdefault("http", {})["disabled"] = True
        elif sub == "disable_tlsalpn_challenge":
            if d.next_arg():
                raise d.arg_err()
            iss.setdefault("challenges", {}).setdefault("tls-alpn", {})["disabled"] = True
        elif sub in ("alt_http_port", "alt_tlsalpn_port"):
            try:
                port = atoi(arg(d))
            except ValueError as exc:
                raise d.errf("invalid port value %s: %s", d.val(), str(exc)) from None
            key = "http" if sub == "alt_http_port" else "tls-alpn"
            iss.setdefault("challenges", {}).setdefault(key, {})["alternate_port"] = port
        elif sub == "eab":
            values = d.remaining_args()
            if len(values) != 2:
                raise d.arg_err()
            iss["external_account"] = {"key_id": values[0], "mac_key": values[1]}
        elif sub == "trusted_roots":
            iss.setdefault("trusted_roots_pem_files", []).extend(d.remaining_args())
        elif sub == "dns":
            _dns_config(iss)["provider"] = dns_provider(d)
        elif sub == "propagation_delay":
            _dns_config(iss)["propagation_delay"] = duration_arg(d, "propagation_delay")
        elif sub == "propagation_timeout":
            _dns_config(iss)["propagation_timeout"] = _timeout_arg(d)
        elif sub == "resolvers":
            _dns_config(iss)["resolvers"] = d.remaining_args()
        elif sub == "dns_ttl":
            _dns_config(iss)["ttl"] = duration_arg(d, "dns_ttl")
        elif sub == "dns_challenge_override_domain":
            _dns_config(iss)["override_domain"] = single_arg(d)
        elif sub == "preferred_chains":
            iss["preferred_chains"] = parse_preferred_chains(d)
        else:
            raise d.errf("unrecognized ACME issuer property: %s", sub)
    return iss


def _timeout_arg(d: Dispenser) -> int:
    value = single_arg(d)
    if value == "-1":
        return -1
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise d.errf("invalid propagation_timeout duration %s: %s", value, str(exc)) from None


def parse_internal_issuer(d: Dispenser) -> dict[str, Any]:
    iss: dict[str, Any] = {"module": "internal"}
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "ca":
            iss["ca"] = arg(d)
        elif sub == "lifetime":
            iss["lifetime"] = duration_arg(d, "lifetime")
        elif sub == "sign_with_root":
            if d.next_arg():
                raise d.arg_err()
            iss["sign_with_root"] = True
        else:
            raise d.errf("unrecognized subdirective '%s'", sub)
    return iss


def parse_zerossl_issuer(d: Dispenser) -> dict[str, Any]:
    iss: dict[str, Any] = {"module": "zerossl"}
    if d.next_arg():
        iss["api_key"] = d.val()
        if d.next_arg():
            raise d.arg_err()

    def cname() -> dict[str, Any]:
        return iss.setdefault("cname_validation", {})

    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "api_key":
            iss["api_key"] = arg(d)
        elif sub == "validity_days":
            # Caddy parses the subdirective's own name as the number, so this always fails
            try:
                iss["validity_days"] = atoi(d.val())
            except ValueError as exc:
                raise d.errf("invalid number of days %s: %s", d.val(), str(exc)) from None
        elif sub == "alt_http_port":
            try:
                iss["alternate_http_port"] = atoi(arg(d))
            except ValueError as exc:
                raise d.errf("invalid port value %s: %s", d.val(), str(exc)) from None
        elif sub == "dns":
            cname()["provider"] = dns_provider(d)
        elif sub == "propagation_delay":
            cname()["propagation_delay"] = duration_arg(d, "propagation_delay")
        elif sub == "propagation_timeout":
            cname()["propagation_timeout"] = _timeout_arg(d)
        elif sub == "resolvers":
            cname()["resolvers"] = d.remaining_args()
        elif sub == "dns_ttl":
            cname()["ttl"] = duration_arg(d, "dns_ttl")
        else:
            raise d.errf("unrecognized zerossl issuer property: %s", sub)
    return iss


ISSUERS = {
    "acme": parse_acme_issuer,
    "internal": parse_internal_issuer,
    "zerossl": parse_zerossl_issuer,
}


def parse_issuer(d: Dispenser) -> dict[str, Any]:
    """A `tls.issuance.*` module; the cursor is on its name."""
    name = d.val()
    fn = ISSUERS.get(name)
    if fn is None:
        raise module_not_registered(d, "tls.issuance." + name)
    return fn(d)


def parse_cert_manager(d: Dispenser) -> GoMap:
    """A `tls.get_certificate.*` module; the cursor is on its name."""
    name = d.val()
    body: dict[str, Any] = {}
    if name == "tailscale":
        if d.next_arg():
            raise d.arg_err()
    elif name == "http":
        body["url"] = arg(d)
        if d.next_arg():
            raise d.arg_err()
    else:
        raise module_not_registered(d, "tls.get_certificate." + name)
    return module_object(body, "via", name)


# --- client authentication -------------------------------------------------------------

_PEM_CERT = re.compile(r"-----BEGIN ([^-]+)-----\r?\n(.*?)-----END \1-----", re.S)


def pem_file_ders(d: Dispenser, filename: str) -> list[str]:
    """Base64 DER of every CERTIFICATE block in a PEM file (read at adapt time, like Caddy)."""
    try:
        with open(filename, "rb") as f:
            text = f.read().decode("latin-1")
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        raise d.errf("%s", f"open {filename}: {reason}") from None
    ders = []
    for kind, body in _PEM_CERT.findall(text):
        if kind != "CERTIFICATE":
            continue
        lines = [ln for ln in body.splitlines() if ln.strip() and ":" not in ln]
        der = base64.b64decode("".join(ln.strip() for ln in lines))
        ders.append(base64.b64encode(der).decode())
    if not ders:
        raise d.errf("no CERTIFICATE pem block found in %s", filename)
    return ders


def _trust_pool(d: Dispenser) -> GoMap:
    """`trust_pool <module> ...`: a `tls.ca_pool.source.*` module (see capools.py)."""
    arg(d)
    try:
        pool = unmarshal_ca_pool(d)
    except CaddyfileError as exc:
        # Caddy wraps the module's error once more, at the end of its segment
        raise d.wrap_err(str(exc)) from None
    return module_object(pool, "provider", pool["provider"])


def _verifier(d: Dispenser) -> GoMap:
    name = arg(d)
    if name != "leaf":
        raise module_not_registered(d, "tls.client_auth.verifier." + name)
    loaders: list[GoMap] = []

    def loader(kind: str, values: list[str]) -> None:
        key = "files" if kind == "file" else "folders"
        loaders.append(module_object({key: values}, "loader", kind))

    if d.next_arg():
        kind = d.val()
        if kind not in ("file", "folder"):
            raise module_not_registered(d, "tls.leaf_cert_loader." + kind)
        loader(kind, d.remaining_args())
    nesting = d.nesting()
    while d.next_block(nesting):
        kind = d.val()
        if kind not in ("file", "folder"):
            raise module_not_registered(d, "tls.leaf_cert_loader." + kind)
        loader(kind, d.remaining_args())
    body = {"leaf_certs_loaders": loaders} if loaders else {}
    return module_object(body, "verifier", name)


CLIENT_AUTH_KEYS = (
    "ca",
    "trusted_ca_certs",
    "trusted_ca_certs_pem_files",
    "trusted_leaf_certs",
    "verifiers",
    "mode",
)


def parse_client_auth(d: Dispenser) -> dict[str, Any]:
    """caddytls.ClientAuthentication.UnmarshalCaddyfile over the `client_auth` segment."""
    ca: dict[str, Any] = {}
    legacy_certs: list[str] = []
    d.next()
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub == "mode":
            if not d.args(1):
                raise d.arg_err()
            ca["mode"] = d.val()
        elif sub == "trusted_ca_cert":
            adaptlog.warn(
                adaptlog.DEFAULT_LOGGER,
                "The 'trusted_ca_cert' field is deprecated. Use the 'trust_pool' field instead.",
            )
            if not d.next_arg():
                raise d.arg_err()
            legacy_certs.append(d.val())
        elif sub == "trusted_leaf_cert":
            if not d.next_arg():
                raise d.arg_err()
            ca.setdefault("trusted_leaf_certs", []).append(d.val())
        elif sub == "trusted_ca_cert_file":
            adaptlog.warn(
                adaptlog.DEFAULT_LOGGER,
                "The 'trusted_ca_cert_file' field is "
                "deprecated. Use the 'trust_pool' field instead.",
            )
            if not d.next_arg():
                raise d.arg_err()
            legacy_certs.extend(pem_file_ders(d, d.val()))
        elif sub == "trusted_leaf_cert_file":
            if not d.next_arg():
                raise d.arg_err()
            ca.setdefault("trusted_leaf_certs", []).extend(pem_file_ders(d, d.val()))
        elif sub == "trust_pool":
            ca["ca"] = _trust_pool(d)
        elif sub == "verifier":
            ca.setdefault("verifiers", []).append(_verifier(d))
        else:
            raise d.errf("unknown subdirective for client_auth: %s", sub)
    if legacy_certs:
        if "ca" in ca:
            raise d.err(
                "cannot specify both 'trust_pool' and 'trusted_ca_cert' or 'trusted_ca_cert_file'"
            )
        ca["ca"] = module_object({"trusted_ca_certs": legacy_certs}, "provider", "inline")
    return struct(ca, CLIENT_AUTH_KEYS)
