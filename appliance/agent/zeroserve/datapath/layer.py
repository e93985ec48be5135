"""What every hook's layer does the same way: load a rendered program beside its
pinned maps, keep the pins in step with the build's features, and write maps.

A layer declares its maps as name -> (key type, value type, max_entries), mirroring
maps.h. A pinned map whose shape no longer matches (sizes from a different plan,
or a layout change that forgot to bump the version) is unpinned before the build,
so bcc creates it afresh, and the agent writes the rules again; the pins of maps
the build no longer declares are unlinked after it. Pins of other layout versions
are unlinked at every load (programs still attached keep their maps).
"""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Collection, Mapping

from zeroserve.datapath import build, libbpf
from zeroserve.datapath.pins import PinLayout
from zeroserve.datapath.structs import STRUCTS

MapShapes = Mapping[str, tuple[str, str, int]]


def sizeof(name: str) -> int:
    """Size of a map key or value type named in a shapes table."""
    return {"__u32": 4, "__u64": 8}.get(name) or ctypes.sizeof(STRUCTS[name])


def _drop_mismatched_pins(
    hook: str, shapes: MapShapes, layout: PinLayout, groups: Collection[set[str]] = ()
) -> list[str]:
    dropped = []
    for name, (key, value, max_entries) in shapes.items():
        path = layout.map_path(hook, name)
        if not path.exists():
            continue
        with libbpf.Map.open_pinned(path) as pinned:
            info = pinned.info
        if (info.key_size, info.value_size, info.max_entries) != (
            sizeof(key),
            sizeof(value),
            max_entries,
        ):
            dropped.append(name)
    for group in groups:
        if group & set(dropped):
            dropped.extend(group - set(dropped))
    for name in dropped:
        layout.map_path(hook, name).unlink(missing_ok=True)
    return dropped


def load(
    hook: str,
    source: str,
    programs: list[build.ProgramSpec],
    shapes: MapShapes,
    layout: PinLayout,
    groups: Collection[set[str]] = (),
) -> tuple[build.Built, dict[str, libbpf.Map]]:
    """Build source and open its pinned maps, under the pin lock.

    A map of a group whose shape changed takes the whole group with it: maps that
    index one another are never half old, half new.
    """
    with layout.lock():
        layout.remove_stale_versions()
        layout.prepare(hook)
        _drop_mismatched_pins(hook, shapes, layout, groups)
        built = build.build(source, programs, layout, hook=hook)
        layout.remove_unused(hook, set(shapes))
        maps = {name: libbpf.Map.open_pinned(layout.map_path(hook, name)) for name in shapes}
    return built, maps


def sync(table: libbpf.Map, entries: Mapping[bytes, bytes]) -> None:
    """Make table hold exactly entries: new ones in first, then stale ones out."""
    for key, value in entries.items():
        table.update(key, value)
    for key in set(table.keys()) - set(entries):
        table.delete(key)


def per_cpu_sum(table: libbpf.Map, index: int, struct: str) -> dict[str, int]:
    """Field-wise sum over CPUs of a per-CPU array slot."""
    kind = STRUCTS[struct]
    slots = [kind.from_buffer_copy(s) for s in table.lookup_per_cpu(index.to_bytes(4, "little"))]
    return {name: sum(getattr(s, name) for s in slots) for name, _ in kind._fields_}


def port_key(port: int) -> bytes:
    """A zs_port key: the port in network order."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} outside 1..65535")
    return port.to_bytes(2, "big")


def local_key(address: str, port: int, family: int | None = None) -> bytes:
    """A zs_local_key: address "" (with family 4 or 6) is every address of the family."""
    key = STRUCTS["zs_local_key"]()
    key.port[:] = list(port_key(port))
    if address:
        ip = ipaddress.ip_address(address)
        key.family = ip.version
        key.addr[: len(ip.packed)] = list(ip.packed)
    else:
        key.family = family or 4
    return bytes(key)
