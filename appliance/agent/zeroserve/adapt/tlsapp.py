"""The TLS app: connection policies, automation policies and certificate loaders (tlsapp.go).

Issuers are dicts with a "module" key ("acme", "internal", "zerossl") and their
fields; they are shared between policies like Go's pointers are, so filling in
global defaults reaches every policy that uses one.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zeroserve.adapt.addresses import AddrError, listeners_use_any_port_other_than, split_host_port
from zeroserve.adapt.gosort import stable_sort
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import GoMap, module_object, struct

if TYPE_CHECKING:
    from zeroserve.adapt.helper import Warning
    from zeroserve.adapt.httptype import Pairing

ZEROSSL_CA = "https://acme.zerossl.com/v2/DV90"
ACME_DEFAULT_OPTIONS = ("acme_ca", "acme_ca_root", "acme_dns", "acme_eab", "preferred_chains")

CONN_POLICY_KEYS = (
    "match",
    "certificate_selection",
    "cipher_suites",
    "curves",
    "alpn",
    "protocol_min",
    "protocol_max",
    "drop",
    "client_authentication",
    "default_sni",
    "fallback_sni",
    "insecure_secrets_log",
    "handshake_context",
)


# --- connection policies ------------------------------------------------------------


def conn_policy_settings_empty(cp: dict) -> bool:
    return not any(v for k, v in cp.items() if k != "match")


def _settings(cp: dict) -> dict:
    return {k: v for k, v in cp.items() if k != "match" and v}


def conn_policy_json(cp: dict) -> dict:
    return struct(cp, CONN_POLICY_KEYS)


def consolidate_conn_policies(cps: list[dict]) -> list[dict]:
    """Catch-alls last, duplicates removed, compatible policies merged (Go's version)."""
    cps = list(cps)
    stable_sort(cps, lambda a, b: b.get("match") is None and a.get("match") is not None)

    def fields_conflict(a: dict, b: dict) -> None:
        def both(key: str) -> bool:
            return bool(a.get(key)) and bool(b.get(key)) and a[key] != b[key]

        checks = (("alpn", "ALPN"), ("cipher_suites", "cipher suites"), ("curves", "curves"))
        for key, label in checks:
            if both(key):
                raise CaddyfileError(
                    f"two policies with same match criteria have conflicting "
                    f"{label}: {_go_list(a[key])} vs. {_go_list(b[key])}"
                )
        if a.get("client_authentication") is None and b.get("client_authentication") is not None:
            raise CaddyfileError(
                "two policies with same match criteria have conflicting client "
                f"auth configuration: <nil> vs. "
                f"{_go_client_auth(b['client_authentication'])}"
            )
        for key, label in (
            ("default_sni", "default SNI"),
            ("fallback_sni", "fallback SNI"),
            ("protocol_min", "min protocol"),
            ("protocol_max", "max protocol"),
        ):
            if both(key):
                raise CaddyfileError(
                    f"two policies with same match criteria have conflicting "
                    f"{label}: {a[key]} vs. {b[key]}"
                )
        sa, sb = a.get("certificate_selection"), b.get("certificate_selection")
        if sa and sb:
            for key in (
                "serial_number",
                "subject_organization",
                "public_key_algorithm",
                "all_tags",
            ):
                if sa.get(key) != sb.get(key):
                    raise CaddyfileError(
                        "two policies with same match criteria have conflicting cert selections"
                    )

    i = 0
    while i < len(cps):
        restart = False
        j = 0
        while j < len(cps):
            if j == i:
                j += 1
                continue
            a, b = cps[i], cps[j]
            if a == b:
                del cps[j]
                restart = True
                break
            am, bm = a.get("match"), b.get("match")
            if (
                i == j - 1
                and am is not None
                and bm is not None
                and len(am) == 1
                and len(bm) == 1
                and "sni" in am
                and "sni" in bm
                and _settings(a) == _settings(b)
            ):
                a["match"] = GoMap(sni=list(am["sni"]) + list(bm["sni"]))
                del cps[j]
                restart = True
                break
            if am == bm:
                fields_conflict(a, b)
                for key in (
                    "alpn",
                    "cipher_suites",
                    "client_authentication",
                    "curves",
                    "default_sni",
                    "fallback_sni",
                    "protocol_min",
                    "protocol_max",
                ):
                    if not a.get(key) and b.get(key):
                        a[key] = b[key]
                sa, sb = a.get("certificate_selection"), b.get("certificate_selection")
                if sa is None and sb is not None:
                    a["certificate_selection"] = sb
                elif sa is not None and sb is not None:
                    tags = sa.setdefault("any_tag", [])
                    for tag in sb.get("any_tag", []):
                        if tag not in tags:
                            tags.append(tag)
                del cps[j]
                restart = True
                break
            j += 1
        if not restart:
            # Go steps back and forward again after a change: the same index is re-checked
            i += 1
    return cps


def _go_bytes(value: Any) -> str:
    from zeroserve.caddyjson import encode

    return "[" + " ".join(str(b) for b in encode(value)) + "]"


def _go_client_auth(ca: dict[str, Any]) -> str:
    """Go's %+v of a *caddytls.ClientAuthentication."""
    ca_raw = _go_bytes(ca["ca"]) if ca.get("ca") is not None else "[]"
    verifiers = "[" + " ".join(_go_bytes(v) for v in ca.get("verifiers", [])) + "]"
    leaf = _go_list(ca.get("trusted_leaf_certs", []))
    return (
        f"&{{CARaw:{ca_raw} ca:<nil> TrustedCACerts:[] TrustedCACertPEMFiles:[] "
        f"TrustedLeafCerts:{leaf} VerifiersRaw:{verifiers} verifiers:[] "
        f"Mode:{ca.get('mode', '')} existingVerifyPeerCert:<nil>}}"
    )


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"


# --- automation policies --------------------------------------------------------------


@dataclass
class AutomationPolicy:
    subjects: list[str] = field(default_factory=list)
    issuers: list[dict] = field(default_factory=list)
    issuers_raw: list[GoMap] | None = None
    managers: list[GoMap] = field(default_factory=list)
    must_staple: bool = False
    renewal_window_ratio: float = 0.0
    key_type: str = ""
    storage: Any = None
    on_demand: bool = False
    reuse_private_keys: bool = False
    disable_ocsp_stapling: bool = False
    ocsp_overrides: dict | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.subjects:
            out["subjects"] = self.subjects
        if self.issuers_raw:
            out["issuers"] = self.issuers_raw
        if self.managers:
            out["get_certificate"] = self.managers
        if self.must_staple:
            out["must_staple"] = True
        if self.renewal_window_ratio:
            out["renewal_window_ratio"] = self.renewal_window_ratio
        if self.key_type:
            out["key_type"] = self.key_type
        if self.storage is not None:
            out["storage"] = self.storage
        if self.on_demand:
            out["on_demand"] = True
        if self.reuse_private_keys:
            out["reuse_private_keys"] = True
        if self.disable_ocsp_stapling:
            out["disable_ocsp_stapling"] = True
        if self.ocsp_overrides:
            out["ocsp_overrides"] = GoMap(self.ocsp_overrides)
        return out

    def same_settings(self, other: AutomationPolicy) -> bool:
        return (
            self.issuers_raw == other.issuers_raw
            and self.managers == other.managers
            and self.storage == other.storage
            and self.must_staple == other.must_staple
            and self.key_type == other.key_type
            and self.on_demand == other.on_demand
            and self.reuse_private_keys == other.reuse_private_keys
            and self.renewal_window_ratio == other.renewal_window_ratio
        )


def default_issuers(email: str) -> list[dict]:
    """caddytls.DefaultIssuers: Let's Encrypt, plus ZeroSSL's ACME endpoint given an email."""
    issuers = [{"module": "acme"}]
    if email.strip():
        issuers.append({"module": "acme", "ca": ZEROSSL_CA, "email": email})
    return issuers


def issuer_json(issuer: dict) -> GoMap:
    body = {k: v for k, v in issuer.items() if k != "module" and v not in (None, "", [], {}, 0)}
    return module_object(body, "module", issuer["module"])


def new_base_automation_policy(options: dict[str, Any], always: bool) -> AutomationPolicy | None:
    has_issuers = "cert_issuer" in options
    has_local = "local_certs" in options
    has_key_type = "key_type" in options
    has_ocsp = "ocsp_stapling" in options
    has_ratio = "renewal_window_ratio" in options
    # global ACME settings need a policy (catch-all) to take effect in, issuers are added later
    has_acme = any(k in options for k in ACME_DEFAULT_OPTIONS)
    if not (has_issuers or has_local or has_key_type or has_ocsp or has_ratio or has_acme):
        return AutomationPolicy() if always else None
    ap = AutomationPolicy()
    if has_key_type:
        ap.key_type = options["key_type"]
    if has_issuers and has_local:
        raise CaddyfileError(
            "global options are ambiguous: local_certs is confusing when "
            "combined with cert_issuer, because local_certs is also a "
            "specific kind of issuer"
        )
    if has_issuers:
        ap.issuers = list(options["cert_issuer"])
    elif has_local:
        ap.issuers = [{"module": "internal"}]
    if has_ocsp:
        ocsp = options["ocsp_stapling"]
        ap.disable_ocsp_stapling = ocsp.get("disable_stapling", False)
        ap.ocsp_overrides = ocsp.get("responder_overrides")
    if has_ratio:
        ap.renewal_window_ratio = options["renewal_window_ratio"]
    return ap


def _host_only(subj: str) -> str:
    try:
        host, _ = split_host_port(subj)
        return host
    except AddrError:
        return subj


_PRIVATE_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "169.254.0.0/16",
    )
]


def _parse_ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # an IPv4 address is digits and dots, an IPv6 one has a colon: that rules out host
    # names (most subjects) without a failed parse, which costs more than the rest per site
    if ":" not in s and s.strip("0123456789."):
        return None
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def subject_is_ip(subj: str) -> bool:
    return "%" not in subj and _parse_ip(subj) is not None


def subject_is_internal(subj: str) -> bool:
    s = _host_only(subj).removesuffix(".").lower()
    if s == "localhost" or s.endswith((".localhost", ".local", ".internal", ".home.arpa")):
        return True
    ip = _parse_ip(s) if "%" not in s else None
    return ip is not None and any(ip.version == n.version and ip in n for n in _PRIVATE_NETS)


def subject_qualifies_for_cert(subj: str) -> bool:
    return (
        subj.strip() != ""
        and not subj.startswith(".")
        and not subj.endswith(".")
        and ("*" not in subj or subj.startswith("*.") or subj == "*")
        and not any(c in subj for c in "()[]{}<> \t\n\"\\!@#$%^&|;'+=")
    )


def subject_qualifies_for_public_cert(subj: str) -> bool:
    return (
        subject_qualifies_for_cert(subj)
        and not subject_is_internal(subj)
        and (
            "*" not in subj
            or (
                subj.count("*") == 1
                and subj.count(".") > 1
                and len(subj) > 2
                and subj.startswith("*.")
            )
        )
    )


def _qualifies_public(ap: AutomationPolicy, subj: str) -> bool:
    return (
        not subject_is_ip(subj)
        and not subject_is_internal(subj)
        and (subj.count("*.") < 2 or ap.on_demand)
    )


def _is_tailscale(name: str) -> bool:
    return name.lower().endswith(".ts.net")


def _all_public(ap: AutomationPolicy) -> bool:
    return not any(not _qualifies_public(ap, s) or _is_tailscale(s) for s in ap.subjects)


def match_wildcard(subject: str, wildcard: str) -> bool:
    subject, wildcard = subject.lower(), wildcard.lower()
    if subject == wildcard:
        return True
    if "*" not in wildcard:
        return False
    labels = subject.split(".")
    for i in range(len(labels)):
        if labels[i] == "":
            continue
        labels[i] = "*"
        if ".".join(labels) == wildcard:
            return True
    return False


def _is_subset(a: AutomationPolicy, b: AutomationPolicy) -> bool:
    if not b.subjects:
        return True
    if not a.subjects:
        return False
    return all(any(match_wildcard(s, t) for t in b.subjects) for s in a.subjects)


def _implicit_internal(ap: AutomationPolicy) -> bool:
    """Internal names with no issuer of their own (none, or the default internal one)."""
    return (
        not ap.issuers
        and bool(ap.subjects)
        and not _all_public(ap)
        and ap.issuers_raw in (None, [GoMap(module="internal")])
    )


def _equivalent(a: AutomationPolicy, b: AutomationPolicy) -> bool:
    """Same settings, counting implicit and default internal issuers as the same."""
    if a.issuers_raw != b.issuers_raw and not (_implicit_internal(a) and _implicit_internal(b)):
        return False
    return a.same_settings(AutomationPolicy(**{**b.__dict__, "issuers_raw": a.issuers_raw}))


def _shadows(i: int, aps: list[AutomationPolicy]) -> int:
    for j in range(i + 1, len(aps)):
        if _is_subset(aps[i], aps[j]):
            return j
    return -1


def consolidate_automation_policies(aps: list[AutomationPolicy]) -> list[AutomationPolicy]:
    aps = list(aps)

    def less(a: AutomationPolicy, b: AutomationPolicy) -> bool:
        if _is_subset(a, b):
            return True
        if _is_subset(b, a):
            return False
        return len(a.subjects) > len(b.subjects)

    stable_sort(aps, less)

    def is_empty(ap: AutomationPolicy) -> bool:
        return ap == AutomationPolicy(subjects=ap.subjects)

    def covered_later(i: int) -> bool:
        # the first later policy that would take these names decides: it must only get
        # certificates from managers (whose certificates the names should use too), or
        # treat the names the same anyway
        for j in range(i + 1, len(aps)):
            if _is_subset(aps[i], aps[j]):
                without_managers = AutomationPolicy(**{**aps[j].__dict__, "managers": []})
                return aps[i].same_settings(without_managers)
        return False

    # an empty policy only matters if a later policy would otherwise take its names, so
    # the last one goes, and so does one covered by a later policy it should defer to
    empty_count = 0
    orig_len = len(aps)
    i = 0
    while i < len(aps):
        if is_empty(aps[i]):
            empty_count += 1
            if i == len(aps) - 1 or covered_later(i):
                del aps[i]
                continue
        i += 1
    if empty_count == orig_len:
        return []

    i = 0
    while i < len(aps):
        restart = False
        j = i + 1
        while j < len(aps):
            if aps[i] == aps[j]:
                del aps[j]
                restart = True
                break
            if (
                _equivalent(aps[i], aps[j])
                and not aps[i].issuers_raw
                and aps[i].subjects
                and aps[j].subjects
                and _all_public(aps[i]) != _all_public(aps[j])
            ):
                # implicit issuers differ for public and internal names: keep them apart
                j += 1
                continue
            if _equivalent(aps[i], aps[j]):
                if aps[i].subjects and not aps[j].subjects:
                    if _shadows(i, aps) >= j:
                        del aps[i]
                        restart = True
                        break
                else:
                    for s in aps[j].subjects:
                        if s not in aps[i].subjects:
                            aps[i].subjects.append(s)
                    del aps[j]
                    continue
            j += 1
        if restart:
            # Go re-evaluates the same i (after i-- and the loop's i++)
            continue
        i += 1
    return aps


def fill_in_global_acme_defaults(issuer: dict, options: dict[str, Any]) -> None:
    if issuer.get("module") != "acme":
        return
    email = options.get("email")
    ca = options.get("acme_ca")
    ca_root = options.get("acme_ca_root")
    dns = options.get("acme_dns")
    eab = options.get("acme_eab")
    chains = options.get("preferred_chains")
    lifetime = options.get("cert_lifetime")
    http_port, https_port = options.get("http_port"), options.get("https_port")
    if email is not None and not issuer.get("email"):
        issuer["email"] = email
    if ca is not None and not issuer.get("ca"):
        issuer["ca"] = ca
    if ca_root is not None and ca_root not in issuer.get("trusted_roots_pem_files", []):
        issuer.setdefault("trusted_roots_pem_files", []).append(ca_root)
    challenges = issuer.get("challenges")
    if dns is not None and (challenges is None or challenges.get("dns") is None):
        if dns is True:
            # a bare acme_dns takes its provider from the dns option
            dns = options.get("dns")
            if dns is None:
                raise CaddyfileError(
                    "acme_dns specified without DNS provider config, but no "
                    "provider specified with 'dns' global option"
                )
        issuer["challenges"] = challenges = {"dns": {"provider": dns}}
    if eab is not None and issuer.get("external_account") is None:
        issuer["external_account"] = eab
    if chains is not None and issuer.get("preferred_chains") is None:
        issuer["preferred_chains"] = chains
    if http_port is not None and (
        challenges is None or not (challenges.get("http") or {}).get("alternate_port")
    ):
        challenges = issuer.setdefault("challenges", {})
        challenges.setdefault("http", {})["alternate_port"] = http_port
    if https_port is not None and (
        challenges is None or not (challenges.get("tls-alpn") or {}).get("alternate_port")
    ):
        challenges = issuer.setdefault("challenges", {})
        challenges.setdefault("tls-alpn", {})["alternate_port"] = https_port
    default_bind = options.get("default_bind")
    if default_bind and not (issuer.get("challenges") or {}).get("bind_host"):
        addresses = default_bind[0].value.addresses
        if addresses and addresses[0]:
            issuer.setdefault("challenges", {})["bind_host"] = addresses[0]
    if lifetime is not None and not issuer.get("certificate_lifetime"):
        issuer["certificate_lifetime"] = lifetime


_ISSUER_TYPES = {"acme": "ACMEIssuer", "internal": "InternalIssuer", "zerossl": "ZeroSSLIssuer"}


def _go_issuers(issuers: list[dict]) -> str:
    """Go's %#v of a []certmagic.Issuer; the pointers are made up, as in Go they vary."""
    if not issuers:
        return "[]certmagic.Issuer(nil)"
    items = ", ".join(
        f"(*caddytls.{_ISSUER_TYPES.get(i.get('module', ''), 'Issuer')})"
        f"(0x{0xC000100000 + 8 * n:x})"
        for n, i in enumerate(issuers)
    )
    return "[]certmagic.Issuer{" + items + "}"


def build_tls_app(
    pairings: list[Pairing], options: dict[str, Any], warnings: list[Warning]
) -> dict | None:
    """The `tls` app, or None when it would be empty."""
    http_port = str(options["http_port"]) if isinstance(options.get("http_port"), int) else "80"
    auto_https = options.get("auto_https") or []
    certificates = GoMap()
    policies: list[AutomationPolicy] | None = None
    cert_loaders: list[tuple[str, list]] = []

    shared_with_hostless: dict[str, None] = {}
    if "off" not in auto_https:
        for p in pairings:
            for sb in p.blocks or []:
                for addr in sb.parsed_keys:
                    if addr.host != "":
                        continue
                    for other in sb.parsed_keys:
                        if other.original == addr.original:
                            continue
                        if other.host and other.scheme != "http" and other.port != http_port:
                            shared_with_hostless[other.host] = None
                    break

    catch_all = new_base_automation_policy(options, False)
    if catch_all is not None:
        policies = [catch_all]

    forced: dict[str, None] = {}
    for p in pairings:
        if not listeners_use_any_port_other_than([a for a, _ in p.addresses], http_port):
            continue
        for sb in p.blocks or []:
            if sb.is_all_http():
                continue
            ap = new_base_automation_policy(options, True)
            assert ap is not None
            hosts = sb.hosts_from_keys(False)
            if not hosts and catch_all is not None:
                ap = catch_all
            if "tls.on_demand" in sb.pile:
                ap.on_demand = True
            if "tls.force_automate" in sb.pile:
                for h in hosts:
                    forced[h] = None
            if "tls.reuse_private_keys" in sb.pile:
                ap.reuse_private_keys = True
            if "tls.key_type" in sb.pile:
                ap.key_type = sb.pile["tls.key_type"][0].value
            if "tls.renewal_window_ratio" in sb.pile:
                ap.renewal_window_ratio = sb.pile["tls.renewal_window_ratio"][0].value
            if "tls.cert_issuer" in sb.pile:
                issuers = [cv.value for cv in sb.pile["tls.cert_issuer"]]
                if ap is catch_all and ap.issuers != issuers:
                    raise CaddyfileError(
                        "automation policy from site block is also default/catch-all policy "
                        "because of key without hostname, and the two are in conflict: "
                        f"{_go_issuers(ap.issuers)} != {_go_issuers(issuers)}"
                    )
                ap.issuers = issuers
            for cv in sb.pile.get("tls.cert_manager", []):
                ap.managers.append(cv.value)
            for cv in sb.pile.get("bind", []):
                for iss in ap.issuers:
                    if iss.get("module") != "acme":
                        continue
                    challenges = iss.setdefault("challenges", {})
                    if not challenges.get("bind_host"):
                        addrs = cv.value.addresses
                        challenges["bind_host"] = addrs[0] if addrs else ""
            if not hosts and catch_all is None:
                catch_all = ap

            ap.subjects = sorted(sb.hosts_from_keys_not_http(http_port))

            ap2 = None
            if not ap.issuers:
                internal: list[str] = []
                external: list[str] = []
                for s in ap.subjects:
                    if _is_tailscale(s):
                        continue
                    if not subject_qualifies_for_cert(s):
                        raise CaddyfileError(f"subject does not qualify for certificate: '{s}'")
                    (external if _qualifies_public(ap, s) else internal).append(s)
                if external and internal:
                    ap.subjects = external
                    ap2 = copy.copy(ap)
                    ap2.subjects = internal
                    ap2.issuers_raw = [GoMap(module="internal")]
            policies = policies if policies is not None else []
            policies.append(ap)
            if ap2 is not None:
                policies.append(ap2)
            for cv in sb.pile.get("tls.cert_loader", []):
                cert_loaders.append(cv.value)

    # one loader module per kind: the lists of all tls directives are concatenated
    by_name: dict[str, list] = {}
    for name, items in cert_loaders:
        by_name.setdefault(name, []).extend(items)
    for name, items in by_name.items():
        certificates[name] = items

    automation: dict[str, Any] | None = {} if policies is not None else None
    on_demand = options.get("on_demand_tls")
    if on_demand is not None:
        automation = automation if automation is not None else {}
        automation["on_demand"] = on_demand
    tls: dict[str, Any] = {}
    if options.get("storage_check") == "off":
        tls["disable_storage_check"] = True
    sci = options.get("storage_clean_interval")
    if sci is False:
        tls["disable_storage_clean"] = True
    for opt, key in (
        ("storage_clean_interval", "storage_clean_interval"),
        ("renew_interval", "renew_interval"),
        ("ocsp_interval", "ocsp_interval"),
    ):
        value = options.get(opt)
        if isinstance(value, int) and not isinstance(value, bool):
            automation = automation if automation is not None else {}
            automation[key] = value
    ocsp = options.get("ocsp_stapling")
    if ocsp is not None and ocsp.get("disable_stapling"):
        tls["disable_ocsp_stapling"] = True

    automate: list[str] = []
    internal_ap = AutomationPolicy(issuers_raw=[GoMap(module="internal")])
    if "off" not in auto_https and "disable_certs" not in auto_https:
        for h in shared_with_hostless:
            automate.append(h)
            if not subject_qualifies_for_public_cert(h):
                internal_ap.subjects.append(h)
    for name in forced:
        if name not in automate:
            automate.append(name)
    automate.sort()
    if automate:
        certificates["automate"] = automate
    if internal_ap.subjects:
        policies = policies if policies is not None else []
        automation = automation if automation is not None else {}
        policies.append(internal_ap)

    if policies is not None:
        automation = automation if automation is not None else {}
        if any(
            options.get(k) is not None
            for k in (
                "email",
                "acme_ca",
                "acme_ca_root",
                "acme_dns",
                "acme_eab",
                "preferred_chains",
            )
        ):
            for ap in policies:
                if not ap.issuers and _all_public(ap):
                    ap.issuers = default_issuers(options.get("email") or "")
                    if options.get("acme_ca") is not None:
                        ap.issuers = [{"module": "acme"}]
        for i, ap in enumerate(policies):
            for j, iss in enumerate(ap.issuers):
                try:
                    fill_in_global_acme_defaults(iss, options)
                except CaddyfileError as exc:
                    raise CaddyfileError(
                        f"filling in global issuer defaults for AP {i}, issuer {j}: {exc}"
                    ) from None
            if ap.issuers and ap.issuers_raw is None:
                ap.issuers_raw = [issuer_json(iss) for iss in ap.issuers]
        policies = consolidate_automation_policies(policies)
        seen: set[str] = set()
        for ap in policies:
            for s in ap.subjects:
                if s in seen:
                    raise CaddyfileError(
                        "hostname appears in more than one automation policy, "
                        f"making certificate management ambiguous: {s}"
                    )
                seen.add(s)
        if policies:
            automation["policies"] = [ap.to_json() for ap in policies]

    if automation:
        tls["automation"] = struct(
            automation,
            ("policies", "on_demand", "ocsp_interval", "renew_interval", "storage_clean_interval"),
        )
    if certificates:
        tls["certificates"] = certificates
    if options.get("dns") is not None:
        tls["dns"] = options["dns"]
    if options.get("tls_resolvers"):
        tls["resolvers"] = options["tls_resolvers"]
    if options.get("ech") is not None:
        tls["encrypted_client_hello"] = options["ech"]
    out = struct(
        tls,
        (
            "certificates",
            "automation",
            "session_tickets",
            "cache",
            "disable_ocsp_stapling",
            "disable_storage_check",
            "disable_storage_clean",
            "encrypted_client_hello",
            "dns",
            "resolvers",
        ),
    )
    return out or None
