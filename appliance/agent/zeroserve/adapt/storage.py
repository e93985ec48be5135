"""Storage modules, `caddy.storage.*`, for directives that name one (`storage <module>`).

A stock Caddy has only `file_system` (caddy's filestorage.go).
"""

from __future__ import annotations

from zeroserve.adapt.modules import unmarshal_module
from zeroserve.caddyfile.dispenser import Dispenser


def unmarshal_storage(d: Dispenser) -> dict:
    """The storage module named by the current token, with its `module` field."""
    name = d.val()
    return {**unmarshal_module(d, "caddy.storage", STORAGES), "module": name}


def _file_system(d: Dispenser) -> dict:
    """Syntax::

    file_system [<root>] {
        root <path>
    }
    """
    d.next()
    out: dict = {}
    if d.next_arg():
        out["root"] = d.val()
    if d.next_arg():
        raise d.arg_err()
    nesting = d.nesting()
    while d.next_block(nesting):
        if d.val() != "root":
            raise d.errf("unrecognized parameter '%s'", d.val())
        if "root" in out:
            raise d.err("storage root already set")
        if not d.next_arg():
            raise d.arg_err()
        out["root"] = d.val()
        if d.next_arg():
            raise d.arg_err()
    if not out.get("root"):
        raise d.err("missing storage root path")
    return out


STORAGES = {"file_system": _file_system}
