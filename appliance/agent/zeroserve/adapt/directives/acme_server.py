"""`acme_server`: the `acme_server` handler (modules/caddypki/acmeserver/caddyfile.go).

Naming a CA also yields a "pki.ca" config value (`{"id": <ca>}`), so the pki
app gets an entry for that CA unless the global `pki` option defines it.
"""

from __future__ import annotations

from zeroserve.adapt.helper import ConfigValue, Helper
from zeroserve.adapt.registry import directive
from zeroserve.adapt.values import parse_duration
from zeroserve.caddyfile.errors import CaddyfileError


@directive("acme_server")
def parse_acme_server(h: Helper) -> list[ConfigValue]:
    """Syntax::

    acme_server [<matcher>] {
        ca         <id>
        lifetime   <duration>
        resolvers  <addresses...>
        challenges <challenges...>
        allow_wildcard_names
        allow {
            domains   <domains...>
            ip_ranges <addresses...>
        }
        deny {
            domains   <domains...>
            ip_ranges <addresses...>
        }
        sign_with_root
    }
    """
    h.next()
    matcher_set = h.extract_matcher_set()
    h.next()
    if h.next_arg():
        raise h.arg_err()
    out: dict = {"handler": "acme_server"}
    policy: dict = {}
    ca_id: str | None = None
    while h.next_block(0):
        sub = h.val()
        if sub == "ca":
            only = h.all_args(1)
            if only is None:
                raise h.arg_err()
            ca_id = only[0]
            if ca_id:
                out["ca"] = ca_id
        elif sub == "lifetime":
            if not h.next_arg():
                raise h.arg_err()
            try:
                lifetime = parse_duration(h.val())
            except ValueError as exc:
                # Caddy returns the duration error bare, without a location
                raise CaddyfileError(str(exc)) from None
            if lifetime:
                out["lifetime"] = lifetime
        elif sub == "resolvers":
            resolvers = h.remaining_args()
            if not resolvers:
                raise h.errf("must specify at least one resolver address")
            out["resolvers"] = resolvers
        elif sub == "challenges":
            out.setdefault("challenges", []).extend(h.remaining_args())
            if not out["challenges"]:
                del out["challenges"]
        elif sub == "allow_wildcard_names":
            policy["allow_wildcard_names"] = True
        elif sub in ("allow", "deny"):
            policy[sub] = _rule_set(h, sub)
        elif sub == "sign_with_root":
            if h.next_arg():
                raise h.arg_err()
            out["sign_with_root"] = True
        else:
            raise h.errf("unrecognized ACME server directive: %s", sub)
    if policy:
        out["policy"] = policy
    values = h.new_route(matcher_set, out)
    if ca_id is not None:
        values.append(ConfigValue("pki.ca", {"id": ca_id}))
    return values


def _rule_set(h: Helper, kind: str) -> dict:
    rules: dict[str, list[str]] = {}
    nesting = h.nesting()
    while h.next_block(nesting):
        if h.count_remaining_args() == 0:
            raise h.arg_err()
        sub = h.val()
        if sub not in ("domains", "ip_ranges"):
            raise h.errf("unrecognized '%s' subdirective: %s", kind, sub)
        rules.setdefault(sub, []).extend(h.remaining_args())
    return rules
