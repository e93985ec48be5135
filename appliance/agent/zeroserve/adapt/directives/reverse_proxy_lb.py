"""Load-balancing selection policies, `http.reverse_proxy.selection_policies.*`.

From modules/caddyhttp/reverseproxy/selectionpolicies.go. `unmarshal_selection_policy`
parses the policy named by the current token into its JSON (with `policy`).
"""

from __future__ import annotations

from zeroserve.adapt.modules import ModuleUnmarshaler, unmarshal_module
from zeroserve.adapt.values import atoi, parse_duration
from zeroserve.caddyfile.dispenser import Dispenser


def unmarshal_selection_policy(d: Dispenser) -> dict:
    """The selection policy named by the current token, with its `policy` field."""
    name = d.val()
    return {
        **unmarshal_module(d, "http.reverse_proxy.selection_policies", POLICIES),
        "policy": name,
    }


def _no_args(d: Dispenser) -> dict:
    """Syntax (random, least_conn, round_robin, first, ip_hash, client_ip_hash, uri_hash)::

    <policy>
    """
    d.next()
    if d.next_arg():
        raise d.arg_err()
    return {}


def _weighted_round_robin(d: Dispenser) -> dict:
    """Syntax::

    weighted_round_robin <weights...>
    """
    d.next()
    args = d.remaining_args()
    if not args:
        raise d.arg_err()
    weights = []
    for weight in args:
        try:
            value = atoi(weight)
        except ValueError as exc:
            raise d.errf("invalid weight value '%s': %v", weight, exc) from None
        if value < 0:
            raise d.errf("invalid weight value '%s': weight should be non-negative", weight)
        weights.append(value)
    return {"weights": weights}


def _random_choose(d: Dispenser) -> dict:
    """Syntax::

    random_choose <choose>
    """
    d.next()
    if not d.next_arg():
        raise d.arg_err()
    try:
        choose = atoi(d.val())
    except ValueError as exc:
        raise d.errf("invalid choice value '%s': %v", d.val(), exc) from None
    return {"choose": choose} if choose else {}


def _fallback(d: Dispenser, out: dict) -> None:
    if not d.next_arg():
        raise d.arg_err()
    if "fallback" in out:
        raise d.err("fallback selection policy already specified")
    out["fallback"] = unmarshal_selection_policy(d)


def _keyed(field: str) -> ModuleUnmarshaler:
    def parse(d: Dispenser) -> dict:
        """Syntax (query, header)::

        query|header <key> {
            fallback <policy>
        }
        """
        d.next()
        if not d.next_arg():
            raise d.arg_err()
        out: dict = {field: d.val()} if d.val() else {}
        while d.next_block(0):
            if d.val() != "fallback":
                raise d.errf("unrecognized option '%s'", d.val())
            _fallback(d, out)
        return out

    return parse


def _cookie(d: Dispenser) -> dict:
    """Syntax::

    cookie [<name> [<secret>]] {
        fallback <policy>
        max_age  <duration>
    }
    """
    d.next()
    args = d.remaining_args()
    if len(args) > 2:
        raise d.arg_err()
    out: dict = {}
    if args and args[0]:
        out["name"] = args[0]
    if len(args) == 2 and args[1]:
        out["secret"] = args[1]
    while d.next_block(0):
        sub = d.val()
        if sub == "fallback":
            _fallback(d, out)
        elif sub == "max_age":
            if not d.next_arg():
                raise d.arg_err()
            if "max_age" in out:
                raise d.err("cookie max_age already specified")
            try:
                max_age = parse_duration(d.val())
            except ValueError:
                raise d.errf("invalid duration: %s", d.val()) from None
            if max_age <= 0:
                raise d.errf(
                    "invalid duration: %s, max_age should be non-zero and positive", d.val()
                )
            if d.next_arg():
                raise d.arg_err()
            out["max_age"] = max_age
        else:
            raise d.errf("unrecognized option '%s'", sub)
    return out


POLICIES = {
    "random": _no_args,
    "least_conn": _no_args,
    "round_robin": _no_args,
    "first": _no_args,
    "ip_hash": _no_args,
    "client_ip_hash": _no_args,
    "uri_hash": _no_args,
    "weighted_round_robin": _weighted_round_robin,
    "random_choose": _random_choose,
    "query": _keyed("key"),
    "header": _keyed("field"),
    "cookie": _cookie,
}
