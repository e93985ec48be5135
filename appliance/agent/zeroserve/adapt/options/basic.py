"""Global options (Caddy's httpcaddyfile/options.go and pkiapp.go).

Each parser gets a dispenser over the option's segment and the value of an
earlier instance of the same option (or None), and returns the option's value.
"""

from __future__ import annotations

from typing import Any

from zeroserve.adapt import registry
from zeroserve.adapt.directives.bind import parse_bind_value
from zeroserve.adapt.directives.log import parse_log_helper
from zeroserve.adapt.helper import ConfigValue, Counter, Helper, NamedCustomLog
from zeroserve.adapt.modules import unmarshal_module
from zeroserve.adapt.order import DEFAULT_ORDER
from zeroserve.adapt.registry import global_option
from zeroserve.adapt.storage import STORAGES
from zeroserve.adapt.tlsmodules import (
    arg,
    dns_provider,
    parse_issuer,
    parse_preferred_chains,
)
from zeroserve.adapt.values import atoi, parse_duration, parse_float
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import GoMap, module_object, struct

DEFAULT_ADMIN_LISTEN = "localhost:2019"


@global_option("debug", "skip_install_trust", "local_certs")
def parse_opt_true(d: Dispenser, existing: Any) -> bool:
    return True


@global_option("http_port", "https_port")
def parse_opt_port(d: Dispenser, existing: Any) -> int:
    d.next()
    args = d.all_args(1)
    if not args:
        raise d.arg_err()
    try:
        return atoi(args[0])
    except ValueError as exc:
        raise d.errf("converting port '%s' to integer value: %s", args[0], str(exc)) from None


@global_option("grace_period", "shutdown_delay", "renew_interval", "ocsp_interval", "cert_lifetime")
def parse_opt_duration(d: Dispenser, existing: Any) -> int:
    if not d.next() or not d.next():
        raise d.arg_err()
    try:
        return parse_duration(d.val())
    except ValueError as exc:
        # Caddy returns the parser's error as it is, without a location
        raise CaddyfileError(str(exc)) from None


@global_option("default_sni", "fallback_sni", "acme_ca", "acme_ca_root", "email", "key_type")
def parse_opt_single_string(d: Dispenser, existing: Any) -> str:
    d.next()
    if not d.next():
        raise d.arg_err()
    val = d.val()
    if d.next():
        raise d.arg_err()
    return val


@global_option("default_bind")
def parse_opt_default_bind(d: Dispenser, existing: Any) -> list[ConfigValue]:
    return [ConfigValue("bind", parse_bind_value(d, True))]


@global_option("order")
def parse_opt_order(d: Dispenser, existing: Any) -> list[str]:
    d.next()
    if not d.next():
        raise d.arg_err()
    name = d.val()
    if name not in registry.directives:
        raise d.errf("%s is not a registered directive", name)
    if not d.next():
        raise d.arg_err()
    pos = d.val()
    order = [x for x in (existing or DEFAULT_ORDER) if x != name]
    if pos in ("first", "last"):
        if d.next_arg():
            raise d.arg_err()
        return [name, *order] if pos == "first" else [*order, name]
    if pos not in ("before", "after"):
        raise d.errf("unknown positional '%s'", pos)
    if not d.next_arg():
        raise d.arg_err()
    other = d.val()
    if d.next_arg():
        raise d.arg_err()
    if other not in order:
        raise d.errf("directive '%s' not found", other)
    index = order.index(other) + (1 if pos == "after" else 0)
    order.insert(index, name)
    return order


@global_option("storage")
def parse_opt_storage(d: Dispenser, existing: Any) -> GoMap:
    if not d.next() or not d.next():
        raise d.arg_err()
    name = d.val()
    return module_object(unmarshal_module(d, "caddy.storage", STORAGES), "module", name)


def _off_only(d: Dispenser, message: str) -> str:
    val = parse_opt_single_string(d, None)
    if val != "off":
        raise d.err(message)
    return val


@global_option("storage_check")
def parse_storage_check(d: Dispenser, existing: Any) -> str:
    return _off_only(d, "storage_check must be 'off'")


@global_option("persist_config")
def parse_persist_config(d: Dispenser, existing: Any) -> str:
    return _off_only(d, "persist_config must be 'off'")


@global_option("storage_clean_interval")
def parse_storage_clean_interval(d: Dispenser, existing: Any) -> int | bool:
    val = parse_opt_single_string(d, None)
    if val == "off":
        return False
    try:
        return parse_duration(val)
    except ValueError as exc:
        raise d.errf(
            "failed to parse storage_clean_interval, must be a duration or 'off' %s", str(exc)
        ) from None


@global_option("acme_dns")
def parse_opt_acme_dns(d: Dispenser, existing: Any) -> Any:
    d.next()
    if not d.next_arg():
        # a bare acme_dns uses the provider of the `dns` option
        return True
    d.prev()
    return dns_provider(d)


@global_option("dns")
def parse_opt_dns(d: Dispenser, existing: Any) -> Any:
    d.next()
    return dns_provider(d)


@global_option("tls_resolvers")
def parse_opt_tls_resolvers(d: Dispenser, existing: Any) -> list[str]:
    d.next()
    args = d.remaining_args()
    if not args:
        raise d.arg_err()
    return args


@global_option("acme_eab")
def parse_opt_acme_eab(d: Dispenser, existing: Any) -> dict[str, str]:
    eab: dict[str, str] = {}
    d.next()
    if d.next_arg():
        raise d.arg_err()
    while d.next_block(0):
        sub = d.val()
        if sub in ("key_id", "mac_key"):
            eab[sub] = arg(d)
        else:
            raise d.errf("unrecognized parameter '%s'", sub)
    return {k: eab[k] for k in ("key_id", "mac_key") if eab.get(k)}


@global_option("cert_issuer")
def parse_opt_cert_issuer(d: Dispenser, existing: Any) -> list[dict]:
    d.next()
    issuers = list(existing or [])
    if not d.next():
        raise d.arg_err()
    issuers.append(parse_issuer(d))
    return issuers


@global_option("admin")
def parse_opt_admin(d: Dispenser, existing: Any) -> dict[str, Any]:
    d.next()
    admin: dict[str, Any] = {}
    if d.next_arg():
        listen = d.val()
        if listen == "off":
            admin["disabled"] = True
            if d.next():
                raise d.err("No more option is allowed after turning off admin config")
        else:
            admin["listen"] = listen
            if d.next_arg():
                raise d.arg_err()
    while d.next_block(0):
        sub = d.val()
        if sub == "enforce_origin":
            admin["enforce_origin"] = True
        elif sub == "origins":
            admin["origins"] = d.remaining_args()
        else:
            raise d.errf("unrecognized parameter '%s'", sub)
    if not admin.get("listen") and not admin.get("disabled"):
        admin["listen"] = DEFAULT_ADMIN_LISTEN
    return admin


@global_option("on_demand_tls")
def parse_opt_on_demand(d: Dispenser, existing: Any) -> dict[str, Any]:
    d.next()
    if d.next_arg():
        raise d.arg_err()
    ond: dict[str, Any] | None = None
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        if sub in ("ask", "permission"):
            if not d.next_arg():
                raise d.arg_err()
            ond = ond if ond is not None else {}
            if "permission" in ond:
                raise d.err("on-demand TLS permission module (or 'ask') already specified")
            if sub == "ask":
                ond["permission"] = module_object({"endpoint": d.val()}, "module", "http")
            else:
                name = d.val()
                if name != "http":
                    raise d.errf(
                        "getting module named 'tls.permission.%s': module not "
                        "registered: tls.permission.%s",
                        name,
                        name,
                    )
                ond["permission"] = module_object({"endpoint": arg(d)}, "module", "http")
        elif sub in ("interval", "burst"):
            raise d.errf(
                "the on_demand_tls '%s' option is no longer supported, remove it from your config",
                sub,
            )
        else:
            raise d.errf("unrecognized parameter '%s'", sub)
    if ond is None:
        raise d.err("expected at least one config parameter for on_demand_tls")
    return ond


@global_option("auto_https")
def parse_opt_auto_https(d: Dispenser, existing: Any) -> list[str]:
    d.next()
    vals = d.remaining_args()
    if not vals:
        raise d.arg_err()
    for v in vals:
        if v not in ("off", "disable_redirects", "disable_certs", "ignore_loaded_certs"):
            raise d.err(
                "auto_https must be one of 'off', 'disable_redirects', 'disable_certs', "
                "or 'ignore_loaded_certs'"
            )
    return vals


@global_option("metrics")
def parse_opt_metrics(d: Dispenser, existing: Any) -> dict[str, Any]:
    d.next()
    metrics: dict[str, Any] = {}
    while d.next_block(0):
        if d.val() == "per_host":
            metrics["per_host"] = True
        elif d.val() == "observe_catchall_hosts":
            metrics["observe_catchall_hosts"] = True
        else:
            raise d.errf("unrecognized servers option '%s'", d.val())
    return metrics


@global_option("ocsp_stapling")
def parse_opt_ocsp_stapling(d: Dispenser, existing: Any) -> dict[str, Any]:
    d.next()
    args = d.all_args(1)
    if not args:
        raise d.arg_err()
    if args[0] != "off":
        raise d.errf("invalid argument '%s'", args[0])
    return {"disable_stapling": True}


@global_option("log")
def parse_opt_log(d: Dispenser, existing: Any) -> list[ConfigValue]:
    names: set[str] = set()
    for cv in existing or []:
        if isinstance(cv.value, NamedCustomLog):
            names.add(cv.value.name)
    warnings: list = []
    h = Helper(d, {}, warnings, None, None, Counter(), {})  # type: ignore[arg-type]
    return parse_log_helper(h, names)


@global_option("preferred_chains")
def parse_opt_preferred_chains(d: Dispenser, existing: Any) -> dict[str, Any]:
    d.next()
    return parse_preferred_chains(d)


@global_option("renewal_window_ratio")
def parse_opt_renewal_window_ratio(d: Dispenser, existing: Any) -> float:
    d.next()
    if not d.next_arg():
        raise d.arg_err()
    val = d.val()
    try:
        ratio = parse_float(val)
    except ValueError as exc:
        raise d.errf("parsing renewal_window_ratio: %s", str(exc)) from None
    if not 0 < ratio < 1:
        raise d.errf("renewal_window_ratio must be between 0 and 1 (exclusive), got %s", val)
    if d.next_arg():
        raise d.arg_err()
    return ratio


_CA_KEYS = (
    "name",
    "root_common_name",
    "intermediate_common_name",
    "intermediate_lifetime",
    "maintenance_interval",
    "renewal_window_ratio",
    "install_trust",
    "root",
    "intermediate",
    "storage",
)


def _key_pair(d: Dispenser) -> dict[str, Any]:
    pair: dict[str, Any] = {}
    nesting = d.nesting()
    while d.next_block(nesting):
        sub = d.val()
        key = {"cert": "certificate", "key": "private_key", "format": "format"}.get(sub)
        if key is None:
            raise d.errf("unrecognized pki ca option '%s'", sub)
        pair[key] = arg(d)
    return {k: pair[k] for k in ("certificate", "private_key", "format") if k in pair}


@global_option("pki")
def parse_opt_pki(d: Dispenser, existing: Any) -> dict[str, dict]:
    """`pki { ca [<id>] { name, root_cn, intermediate_cn, intermediate_lifetime, ... } }`."""
    # a later pki option replaces an earlier one, as in Caddy
    cas: dict[str, dict] = {}
    d.next()
    while d.next_block(0):
        if d.val() != "ca":
            raise d.errf("unrecognized pki option '%s'", d.val())
        ca_id = "local"
        if d.next_arg():
            ca_id = d.val()
            if d.next_arg():
                raise d.arg_err()
        ca = cas.setdefault(ca_id, {"id": ca_id})
        nesting = d.nesting()
        while d.next_block(nesting):
            sub = d.val()
            if sub in ("name", "root_cn", "intermediate_cn"):
                key = {
                    "name": "name",
                    "root_cn": "root_common_name",
                    "intermediate_cn": "intermediate_common_name",
                }[sub]
                ca[key] = arg(d)
            elif sub in ("intermediate_lifetime", "maintenance_interval"):
                try:
                    ca[sub] = parse_duration(arg(d))
                except ValueError as exc:
                    raise d.wrap_err(str(exc)) from None
            elif sub == "renewal_window_ratio":
                ca[sub] = parse_float(arg(d))
            elif sub in ("root", "intermediate"):
                ca[sub] = _key_pair(d)
            else:
                raise d.errf("unrecognized pki ca option '%s'", sub)
    return cas


def ca_json(ca: dict[str, Any]) -> dict[str, Any]:
    return struct(ca, _CA_KEYS, keep=("install_trust",))
