"""The `bind` directive (builtins.go parseBind).

Syntax::

    bind <addresses...> {
        protocols [h1|h2|h2c|h3] ...
    }
"""

from __future__ import annotations

from zeroserve.adapt.helper import AddressesWithProtocols, ConfigValue, Helper
from zeroserve.adapt.registry import directive
from zeroserve.caddyfile.dispenser import Dispenser


def parse_bind_value(d: Dispenser, default_any: bool) -> AddressesWithProtocols:
    """Addresses and protocols; `default_any` gives an empty address list one "" entry."""
    d.next()
    addresses = d.remaining_args()
    if not addresses and default_any:
        addresses = [""]
    protocols = None
    while d.next_block(0):
        if d.val() == "protocols":
            protocols = d.remaining_args()
            if not protocols:
                raise d.err("protocols requires one or more arguments")
        else:
            raise d.errf("unknown subdirective: %s", d.val())
    return AddressesWithProtocols(addresses, protocols)


@directive("bind")
def parse_bind(h: Helper) -> list[ConfigValue]:
    return [ConfigValue("bind", parse_bind_value(h.dispenser, False))]
