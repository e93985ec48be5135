"""A whole plan on the hooks: load every layer aside, then swap them in.

Provisioning comes first (render, compile, verify, fill maps) and only then are
the programs attached, each with a replace that leaves no moment with nothing
attached: XDP with XDP_FLAGS_REPLACE against the program we attached last, TC by
replacing the filter in its fixed clsact slot, sk_lookup by linking the new
program before the old link is closed. If an attach fails, the interfaces
already switched are switched back and the old programs keep running.

Maps are pinned and shared by old and new programs, so the new plan's rules
reach the old programs too the moment they are written: rules never go through
the swap, only program shapes (features) do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from zeroserve.datapath import attach
from zeroserve.datapath.pins import PinLayout
from zeroserve.datapath.sock import SockFeatures, SockLayer
from zeroserve.datapath.tc import TcFeatures, TcLayer
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan.model import Plan

TC_NAMES = {"ingress": "zeroserve-in", "egress": "zeroserve-out"}


@dataclass
class _Loaded:
    xdp: XdpLayer | None = None
    tc: TcLayer | None = None
    sock: SockLayer | None = None

    def close(self) -> None:
        for layer in (self.xdp, self.tc, self.sock):
            if layer is not None:
                layer.close()


@dataclass
class Edge:
    """The attached programs of the current plan on a set of interfaces."""

    layout: PinLayout = field(default_factory=PinLayout)
    ns: str | None = None
    current: _Loaded = field(default_factory=_Loaded)
    interfaces: tuple[str, ...] = ()
    xdp_mode: attach.XdpMode = attach.XdpMode.NATIVE
    sk_link: int = -1

    def apply(self, plan: Plan, sockets: Mapping[tuple[str, int], int] | None = None) -> None:
        """Make plan the running one; sockets are the listeners sk_lookup dispatches to."""
        mode = attach.XdpMode[plan.xdp_mode.upper()]
        if self.interfaces and (plan.interfaces, mode) != (self.interfaces, self.xdp_mode):
            raise ValueError("interfaces and XDP mode change only with a detach first")
        indexes = [attach.ifindex(name, self.ns) for name in plan.interfaces]
        new = self._provision(plan, sockets)
        try:
            self._swap(new, indexes, mode)
        except BaseException:
            new.close()
            raise
        old, self.current = self.current, new
        self.interfaces, self.xdp_mode = plan.interfaces, mode
        old.close()

    def _provision(self, plan: Plan, sockets: Mapping[tuple[str, int], int] | None) -> _Loaded:
        new = _Loaded()
        try:
            if plan.xdp.needed:
                new.xdp = XdpLayer.load(XdpFeatures.for_plan(plan.xdp), self.layout)
                new.xdp.apply(plan.xdp)
            if plan.tc.needed:
                new.tc = TcLayer.load(TcFeatures.for_plan(plan.tc), self.layout)
                new.tc.apply(plan.tc)
            if sockets:
                new.sock = SockLayer.load(SockFeatures(), self.layout)
                new.sock.set_dispatch(sockets)
        except BaseException:
            new.close()
            raise
        return new

    def _swap(self, new: _Loaded, indexes: list[int], mode: attach.XdpMode) -> None:
        undo: list[Callable[[], None]] = []
        link = -1
        try:
            for index in indexes:
                self._swap_xdp(index, new, mode, undo)
                self._swap_tc(index, new, undo)
            if new.sock is not None:
                link = attach.attach_sk_lookup(new.sock.prog_fd, self.ns)
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        # The new link runs before the old one closes: lookups never go without.
        if self.sk_link >= 0:
            os.close(self.sk_link)
        self.sk_link = link

    def _swap_xdp(
        self, index: int, new: _Loaded, mode: attach.XdpMode, undo: list[Callable[[], None]]
    ) -> None:
        old = self.current.xdp
        if new.xdp is not None:
            attach.attach_xdp(
                index, new.xdp.prog_fd, mode, old.prog_fd if old else None, ns=self.ns
            )
            if old is not None:
                undo.append(
                    lambda: attach.attach_xdp(index, old.prog_fd, mode, new.xdp.prog_fd, ns=self.ns)
                )
            else:
                undo.append(lambda: attach.detach_xdp(index, mode, ns=self.ns))
        elif old is not None:
            attach.detach_xdp(index, mode, ns=self.ns)
            undo.append(lambda: attach.attach_xdp(index, old.prog_fd, mode, ns=self.ns))

    def _swap_tc(self, index: int, new: _Loaded, undo: list[Callable[[], None]]) -> None:
        old = self.current.tc
        if new.tc is not None:
            fds = {"ingress": new.tc.ingress_fd, "egress": new.tc.egress_fd}
            for direction, fd in fds.items():
                attach.attach_tc(index, fd, direction, TC_NAMES[direction], self.ns)
            if old is not None:
                undo.append(lambda: self._attach_tc(index, old))
            else:
                undo.append(lambda: attach.detach_tc(index, self.ns))
        elif old is not None:
            attach.detach_tc(index, self.ns)
            undo.append(lambda: self._attach_tc(index, old))

    def _attach_tc(self, index: int, tc: TcLayer) -> None:
        attach.attach_tc(index, tc.ingress_fd, "ingress", TC_NAMES["ingress"], self.ns)
        attach.attach_tc(index, tc.egress_fd, "egress", TC_NAMES["egress"], self.ns)

    def detach(self) -> None:
        """Take every program off the hooks; pinned maps (rules, counters) stay."""
        for name in self.interfaces:
            index = attach.ifindex(name, self.ns)
            if self.current.xdp is not None:
                attach.detach_xdp(index, self.xdp_mode, ns=self.ns)
            if self.current.tc is not None:
                attach.detach_tc(index, self.ns)
        if self.sk_link >= 0:
            os.close(self.sk_link)
            self.sk_link = -1
        self.current.close()
        self.current = _Loaded()
        self.interfaces = ()
