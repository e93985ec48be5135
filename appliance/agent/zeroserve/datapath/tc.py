"""The TC layer: per-site counters, egress DSCP marking and MSS clamping, from
appliance/bpf/tc/entry.c.j2, as two programs for a clsact qdisc (ingress and egress).

A site is a local address:port (address "" is every local address). Marks and
clamps are compile-time features (a plan without DSCP compiles no marking), the
sites themselves live in a pinned map and change without a reload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from zeroserve.datapath import build, layer, libbpf, render
from zeroserve.datapath.pins import PinLayout
from zeroserve.datapath.structs import CONSTS, STRUCTS
from zeroserve.plan.model import Site, TcPlan

HOOK = "tc"
ENTRY_TEMPLATE = "tc/entry.c.j2"
INGRESS, EGRESS = "zs_tc_ingress", "zs_tc_egress"


class SiteCounter(NamedTuple):
    in_packets: int
    in_bytes: int
    out_packets: int
    out_bytes: int


@dataclass(frozen=True)
class TcFeatures:
    dscp: bool = True
    mss: bool = True
    vlan: bool = True
    sites_max: int = CONSTS["ZS_SITES_MAX"]

    def defines(self) -> dict[str, int]:
        flags = {
            "ZS_FEATURE_DSCP": self.dscp,
            "ZS_FEATURE_MSS": self.mss,
            "ZS_FEATURE_VLAN": self.vlan,
        }
        return {name: 1 for name, on in flags.items() if on} | {"ZS_SITES_MAX": self.sites_max}

    def maps(self) -> dict[str, tuple[str, str, int]]:
        # Mirrors maps.h (ZS_HOOK_TC).
        return {
            "zs_sites": ("zs_local_key", "zs_site", self.sites_max),
            "zs_site_stats": ("__u32", "zs_site_counter", self.sites_max),
        }

    @classmethod
    def for_plan(cls, plan: TcPlan) -> TcFeatures:
        return cls(
            dscp=any(s.dscp is not None for s in plan.sites),
            mss=any(s.mss is not None for s in plan.sites),
        )


def render_tc(features: TcFeatures, layout: PinLayout) -> str:
    return render.render(
        ENTRY_TEMPLATE, pin_dir=str(layout.fresh_dir(HOOK)), defines=features.defines()
    )


@dataclass
class TcLayer:
    """Loaded ingress and egress programs and their open maps. Attaching is attach.py's."""

    features: TcFeatures
    layout: PinLayout
    built: build.Built
    maps: dict[str, libbpf.Map] = field(default_factory=dict)

    @classmethod
    def load(cls, features: TcFeatures = TcFeatures(), layout: PinLayout | None = None) -> TcLayer:
        layout = layout or PinLayout()
        specs = [build.ProgramSpec(f, libbpf.PROG_TYPE_SCHED_CLS) for f in (INGRESS, EGRESS)]
        built, maps = layer.load(HOOK, render_tc(features, layout), specs, features.maps(), layout)
        return cls(features, layout, built, maps)

    @property
    def ingress_fd(self) -> int:
        return self.built.fd(INGRESS)

    @property
    def egress_fd(self) -> int:
        return self.built.fd(EGRESS)

    def set_sites(self, sites: Iterable[Site]) -> None:
        """Make the site map hold exactly sites (a site without an address gets both families)."""
        value = STRUCTS["zs_site"]
        keep = CONSTS["ZS_DSCP_KEEP"]
        wanted = {}
        for site in sites:
            if not 0 < site.id < self.features.sites_max:
                raise ValueError(f"site id {site.id} outside 1..{self.features.sites_max - 1}")
            if site.dscp is not None and not self.features.dscp:
                raise ValueError("DSCP marking is not compiled in")
            if site.mss is not None and not self.features.mss:
                raise ValueError("MSS clamping is not compiled in")
            record = bytes(
                value(id=site.id, mss=site.mss or 0, dscp=keep if site.dscp is None else site.dscp)
            )
            families = (None,) if site.address else (4, 6)
            for family in families:
                wanted[layer.local_key(site.address, site.port, family)] = record
        layer.sync(self.maps["zs_sites"], wanted)

    def apply(self, plan: TcPlan) -> None:
        self.set_sites(plan.sites)

    def site_counter(self, site_id: int) -> SiteCounter:
        return SiteCounter(
            **layer.per_cpu_sum(self.maps["zs_site_stats"], site_id, "zs_site_counter")
        )

    def close(self) -> None:
        for table in self.maps.values():
            table.close()
        self.built.close()

    def __enter__(self) -> TcLayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
