"""Global options that configure other apps: events, filesystem, ech.

Caddy's standard distribution has no event handler, filesystem or DNS provider
modules, so configuring one is the same "module not registered" error as in Caddy.
"""

from __future__ import annotations

from typing import Any

from zeroserve.adapt.registry import global_option
from zeroserve.adapt.tlsmodules import arg, dns_provider, module_not_registered
from zeroserve.caddyfile.dispenser import Dispenser


@global_option("events")
def parse_opt_events(d: Dispenser, existing: Any) -> Any:
    """``events { on <event> <handler_module> ... }``."""
    d.next()
    while d.next_block(0):
        if d.val() != "on":
            raise d.errf("unrecognized subdirective: %s", d.val())
        arg(d)  # the event name
        handler = arg(d)
        raise module_not_registered(d, "events.handlers." + handler)
    return None


@global_option("filesystem")
def parse_opt_filesystem(d: Dispenser, existing: Any) -> Any:
    """``filesystem <name> <module> { ... }``."""
    d.next()
    arg(d)
    module = arg(d)
    raise module_not_registered(d, "caddy.fs." + module)


@global_option("ech")
def parse_opt_ech(d: Dispenser, existing: Any) -> dict[str, Any]:
    """``ech <public_names...> { dns <provider> ... }``."""
    d.next()
    names = d.remaining_args()
    if not names:
        raise d.arg_err()
    while d.next_block(0):
        if d.val() == "dns":
            dns_provider(d)
        raise d.errf("ech: unrecognized subdirective '%s'", d.val())
    return {"configs": [{"public_name": n} for n in names]}
