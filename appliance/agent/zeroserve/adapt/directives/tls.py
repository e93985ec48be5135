"""The `tls` directive (builtins.go parseTLS).

Syntax::

    tls [<email>|internal|force_automate]|[<cert_file> <key_file>] {
        protocols <min> [<max>]
        ciphers   <cipher_suites...>
        curves    <curves...>
        client_auth { ... }
        alpn      <values...>
        load      <paths...>
        ca        <acme_ca_endpoint>
        ca_root   <pem_file>
        key_type  [ed25519|p256|p384|rsa2048|rsa4096]
        dns       <provider_name> [...]
        propagation_delay|propagation_timeout|dns_ttl <duration>
        resolvers <dns_servers...>
        dns_challenge_override_domain <domain>
        on_demand
        reuse_private_keys
        force_automate
        renewal_window_ratio <ratio>
        eab       <key_id> <mac_key>
        issuer    <module_name> [...]
        get_certificate <module_name> [...]
        insecure_secrets_log <log_file>
    }

Config values: "tls.cert_loader" ((module name, items)), "tls.cert_issuer" (issuer dict),
"tls.key_type", "tls.on_demand", "tls.cert_manager", "tls.reuse_private_keys",
"tls.force_automate", "tls.renewal_window_ratio" and always one "tls.connection_policy"
(a connection policy dict; `match` is filled in by the server builder).
"""

from __future__ import annotations

import copy
from typing import Any

from zeroserve.adapt.helper import ConfigValue, Helper
from zeroserve.adapt.registry import directive
from zeroserve.adapt.tlsapp import default_issuers
from zeroserve.adapt.tlsmodules import (
    _timeout_arg,
    dns_provider,
    duration_arg,
    parse_cert_manager,
    parse_client_auth,
    parse_issuer,
)
from zeroserve.adapt.values import parse_float

SUPPORTED_PROTOCOLS = ("tls1.2", "tls1.3")
SUPPORTED_CURVES = ("X25519MLKEM768", "x25519", "secp256r1", "secp384r1", "secp521r1")
CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
)

_DNS_OPTIONS = (
    "propagation_delay",
    "propagation_timeout",
    "resolvers",
    "dns_ttl",
    "dns_challenge_override_domain",
)


@directive("tls")
def parse_tls(h: Helper) -> list[ConfigValue]:
    h.next()
    cp: dict[str, Any] = {}
    file_loader: list[dict[str, Any]] = []
    folder_loader: list[str] = []
    any_tag: list[str] = []
    acme: dict[str, Any] | None = None
    internal: dict[str, Any] | None = None
    key_type = ""
    issuers: list[dict[str, Any]] = []
    managers: list[Any] = []
    on_demand = reuse_keys = force_automate = False
    renewal_ratio: float | None = None
    dns_options: list[str] = []
    has_dns = False

    first = h.remaining_args()
    if len(first) == 1:
        if first[0] == "internal":
            internal = {"module": "internal"}
        elif first[0] == "force_automate":
            force_automate = True
        elif "@" not in first[0]:
            raise h.err(
                "single argument must either be 'internal', 'force_automate', or an email address"
            )
        else:
            acme = {"module": "acme", "email": first[0]}
    elif len(first) == 2:
        cert_file, key_file = first
        tags = h.state.setdefault("tlsCertTags", {})
        tag = tags.get(cert_file)
        if tag is None:
            # each certificate file is loaded once, under one tag (Caddy issue #3004)
            tag = f"cert{len(tags)}"
            file_loader.append({"certificate": cert_file, "key": key_file, "tags": [tag]})
            tags[cert_file] = tag
        any_tag.append(tag)
    elif len(first) > 2:
        raise h.arg_err()

    def acme_issuer() -> dict[str, Any]:
        nonlocal acme
        if acme is None:
            acme = {"module": "acme"}
        return acme

    def dns_cfg() -> dict[str, Any]:
        return acme_issuer().setdefault("challenges", {}).setdefault("dns", {})

    has_block = False
    while h.next_block(0):
        has_block = True
        sub = h.val()
        if sub in _DNS_OPTIONS and sub not in dns_options:
            dns_options.append(sub)
        if sub == "protocols":
            args = h.remaining_args()
            if not args:
                raise h.err("protocols requires one or two arguments")
            for i, key in enumerate(("protocol_min", "protocol_max")):
                if len(args) > i:
                    if args[i] not in SUPPORTED_PROTOCOLS:
                        raise h.errf("wrong protocol name or protocol not supported: '%s'", args[i])
                    cp[key] = args[i]
        elif sub == "ciphers":
            while h.next_arg():
                if h.val() not in CIPHER_SUITES:
                    raise h.errf(
                        "wrong cipher suite name or cipher suite not supported: '%s'", h.val()
                    )
                cp.setdefault("cipher_suites", []).append(h.val())
        elif sub == "curves":
            while h.next_arg():
                if h.val() not in SUPPORTED_CURVES:
                    raise h.errf("Wrong curve name or curve not supported: '%s'", h.val())
                cp.setdefault("curves", []).append(h.val())
        elif sub == "client_auth":
            cp["client_authentication"] = parse_client_auth(h.new_from_next_segment())
        elif sub == "alpn":
            args = h.remaining_args()
            if not args:
                raise h.arg_err()
            cp["alpn"] = args
        elif sub == "load":
            folder_loader.extend(h.remaining_args())
        elif sub == "ca":
            args = h.remaining_args()
            if len(args) != 1:
                raise h.arg_err()
            acme_issuer()["ca"] = args[0]
        elif sub == "key_type":
            args = h.remaining_args()
            if len(args) != 1:
                raise h.arg_err()
            key_type = args[0]
        elif sub == "eab":
            args = h.remaining_args()
            if len(args) != 2:
                raise h.arg_err()
            acme_issuer()["external_account"] = {"key_id": args[0], "mac_key": args[1]}
        elif sub == "issuer":
            if not h.next_arg():
                raise h.arg_err()
            issuers.append(parse_issuer(h.dispenser))
        elif sub == "get_certificate":
            if not h.next_arg():
                raise h.arg_err()
            managers.append(parse_cert_manager(h.dispenser))
        elif sub == "dns":
            has_dns = True
            dns_cfg()["provider"] = dns_provider(h.dispenser)
        elif sub == "resolvers":
            args = h.remaining_args()
            if not args:
                raise h.arg_err()
            dns_cfg()["resolvers"] = args
        elif sub == "propagation_delay":
            dns_cfg()["propagation_delay"] = duration_arg(h.dispenser, "propagation_delay")
        elif sub == "propagation_timeout":
            dns_cfg()["propagation_timeout"] = _timeout_arg(h.dispenser)
        elif sub == "dns_ttl":
            dns_cfg()["ttl"] = duration_arg(h.dispenser, "dns_ttl")
        elif sub == "dns_challenge_override_domain":
            args = h.remaining_args()
            if len(args) != 1:
                raise h.arg_err()
            dns_cfg()["override_domain"] = args[0]
        elif sub == "ca_root":
            args = h.remaining_args()
            if len(args) != 1:
                raise h.arg_err()
            acme_issuer().setdefault("trusted_roots_pem_files", []).append(args[0])
        elif sub == "on_demand":
            if h.next_arg():
                raise h.arg_err()
            on_demand = True
        elif sub == "reuse_private_keys":
            if h.next_arg():
                raise h.arg_err()
            reuse_keys = True
        elif sub == "force_automate":
            if h.next_arg():
                raise h.arg_err()
            force_automate = True
        elif sub == "renewal_window_ratio":
            args = h.remaining_args()
            if len(args) != 1:
                raise h.arg_err()
            try:
                renewal_ratio = parse_float(args[0])
            except ValueError as exc:
                raise h.errf("parsing renewal_window_ratio: %s", str(exc)) from None
            if not 0 < renewal_ratio < 1:
                raise h.errf(
                    "renewal_window_ratio must be between 0 and 1 (exclusive), got %s", args[0]
                )
        elif sub == "insecure_secrets_log":
            if not h.next_arg():
                raise h.arg_err()
            cp["insecure_secrets_log"] = h.val()
        else:
            raise h.errf("unknown subdirective: %s", sub)

    if not first and not has_block:
        raise h.arg_err()
    if dns_options and not has_dns and h.option("acme_dns") is None and h.option("dns") is None:
        raise h.errf(
            "setting DNS challenge options [%s] requires a DNS provider (set with the "
            "'dns' subdirective or 'acme_dns' global option)",
            ", ".join(dns_options),
        )

    vals: list[ConfigValue] = []
    if file_loader:
        vals.append(ConfigValue("tls.cert_loader", ("load_files", file_loader)))
    if folder_loader:
        vals.append(ConfigValue("tls.cert_loader", ("load_folders", folder_loader)))
    if issuers and (acme is not None or internal is not None):
        raise h.err(
            "cannot mix issuer subdirective (explicit issuers) with other "
            "issuer-specific subdirectives (implicit issuers)"
        )
    if acme is not None and internal is not None:
        raise h.err("cannot create both ACME and internal certificate issuers")
    if issuers:
        vals.extend(ConfigValue("tls.cert_issuer", iss) for iss in issuers)
    elif acme is not None:
        # global ACME issuers (cert_issuer) stand in for the default ones
        global_acme = [i for i in h.option("cert_issuer") or [] if i.get("module") == "acme"]
        defaults = global_acme or default_issuers(acme.get("email", ""))
        if acme.get("ca"):
            defaults = [acme]
        for iss in defaults:
            if iss is not acme and iss.get("module") == "acme":
                merged = copy.deepcopy(acme)
                merged.pop("ca", None)
                if iss.get("ca"):
                    merged["ca"] = iss["ca"]
                iss = merged
            vals.append(ConfigValue("tls.cert_issuer", iss))
    elif internal is not None:
        vals.append(ConfigValue("tls.cert_issuer", internal))
    if key_type:
        vals.append(ConfigValue("tls.key_type", key_type))
    if on_demand:
        vals.append(ConfigValue("tls.on_demand", True))
    vals.extend(ConfigValue("tls.cert_manager", m) for m in managers)
    if reuse_keys:
        vals.append(ConfigValue("tls.reuse_private_keys", True))
    if force_automate:
        vals.append(ConfigValue("tls.force_automate", True))
    if renewal_ratio is not None:
        vals.append(ConfigValue("tls.renewal_window_ratio", renewal_ratio))
    if any_tag:
        cp["certificate_selection"] = {"any_tag": any_tag}
    vals.append(ConfigValue("tls.connection_policy", cp))
    return vals
