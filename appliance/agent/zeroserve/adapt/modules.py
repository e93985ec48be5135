"""Guest modules inside directives: Caddy's `caddyfile.UnmarshalModule`.

Many directives name a module by its last ID label and let it parse its own
segment (`transport http {...}`, `lb_policy cookie`, `encode { zstd }`, ...).
Each such namespace is a plain name → unmarshaler table kept next to the
directive that uses it; this function looks a name up in one and runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from zeroserve.caddyfile.dispenser import Dispenser

ModuleUnmarshaler = Callable[[Dispenser], dict]


def unmarshal_module(d: Dispenser, namespace: str, table: Mapping[str, ModuleUnmarshaler]) -> dict:
    """Run the module named by the current token on the segment it starts.

    The error for an unknown name is Caddy's, e.g. ``getting module named
    'http.encoders.br': module not registered: http.encoders.br, at Caddyfile:3``.
    """
    module_id = f"{namespace}.{d.val()}"
    fn = table.get(d.val())
    if fn is None:
        raise d.errf("getting module named '%s': module not registered: %s", module_id, module_id)
    return fn(d.new_from_next_segment())
