"""The socket layer: an sk_lookup program (appliance/bpf/sock/entry.c.j2) handing
each served local (address, port) to a listening socket through a sockmap.

The agent fills two pinned maps: zs_socks (slot -> socket, from the listening
socket's fd) and zs_dispatch (address:port -> slot). A socket leaves the sockmap
by itself when it closes; connections then meet the stack's usual lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from zeroserve.datapath import build, layer, libbpf, render
from zeroserve.datapath.pins import PinLayout
from zeroserve.datapath.structs import CONSTS

HOOK = "sock"
ENTRY_TEMPLATE = "sock/entry.c.j2"
FUNCTION = "zs_sk_lookup"


@dataclass(frozen=True)
class SockFeatures:
    dispatch_max: int = CONSTS["ZS_DISPATCH_MAX"]

    def defines(self) -> dict[str, int]:
        return {"ZS_DISPATCH_MAX": self.dispatch_max}

    def maps(self) -> dict[str, tuple[str, str, int]]:
        # Mirrors maps.h (ZS_HOOK_SOCK).
        return {
            "zs_dispatch": ("zs_local_key", "__u32", self.dispatch_max),
            "zs_socks": ("__u32", "__u32", self.dispatch_max),
        }


def render_sock(features: SockFeatures, layout: PinLayout) -> str:
    return render.render(
        ENTRY_TEMPLATE, pin_dir=str(layout.fresh_dir(HOOK)), defines=features.defines()
    )


@dataclass
class SockLayer:
    """A loaded sk_lookup program and its maps; attach.attach_sk_lookup links it."""

    features: SockFeatures
    layout: PinLayout
    built: build.Built
    maps: dict[str, libbpf.Map] = field(default_factory=dict)

    @classmethod
    def load(
        cls, features: SockFeatures = SockFeatures(), layout: PinLayout | None = None
    ) -> SockLayer:
        layout = layout or PinLayout()
        specs = [build.ProgramSpec(FUNCTION, libbpf.PROG_TYPE_SK_LOOKUP, libbpf.ATTACH_SK_LOOKUP)]
        built, maps = layer.load(
            HOOK, render_sock(features, layout), specs, features.maps(), layout
        )
        return cls(features, layout, built, maps)

    @property
    def prog_fd(self) -> int:
        return self.built.fd(FUNCTION)

    def set_dispatch(self, sockets: Mapping[tuple[str, int], int]) -> None:
        """Make (address, port) -> listening socket fd the whole dispatch table.

        Address "" serves the port on every local address of both families.
        """
        if len(sockets) > self.features.dispatch_max:
            raise ValueError(f"{len(sockets)} listeners, room for {self.features.dispatch_max}")
        socks, dispatch = self.maps["zs_socks"], self.maps["zs_dispatch"]
        old_slots = {int.from_bytes(dispatch.lookup(k) or b"", "little") for k in dispatch.keys()}
        wanted = {}
        for slot, ((address, port), fd) in enumerate(sockets.items()):
            socks.update(slot.to_bytes(4, "little"), fd.to_bytes(4, "little"))
            families = (None,) if address else (4, 6)
            for family in families:
                wanted[layer.local_key(address, port, family)] = slot.to_bytes(4, "little")
        layer.sync(dispatch, wanted)
        for slot in old_slots - set(range(len(sockets))):
            socks.delete(slot.to_bytes(4, "little"))

    def close(self) -> None:
        for table in self.maps.values():
            table.close()
        self.built.close()

    def __enter__(self) -> SockLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
