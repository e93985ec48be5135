"""A whole plan on the hooks: load every layer aside, then swap them in.

Staging comes first (render, compile, verify), then the maps are filled, and only then are
the programs attached, each with a replace that leaves no moment with nothing
attached: XDP with XDP_FLAGS_REPLACE against the program we attached last, TC by
replacing the filter in its fixed clsact slot, sk_lookup by linking the new
program before the old link is closed. If an attach fails, the interfaces
already switched are switched back and the old programs keep running.

Maps are pinned and shared by old and new programs, so the new plan's rules
reach the old programs too the moment they are written: rules never go through
the swap, only program shapes (features) do. A plan whose shapes equal the running
ones is therefore staged without compiling and committed as map writes alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field

from zeroserve.datapath import attach, build, libbpf
from zeroserve.datapath.pins import PinLayout
from zeroserve.datapath.sock import SockFeatures, SockLayer
from zeroserve.datapath.syncookie import StackSysctls
from zeroserve.datapath.tc import TcFeatures, TcLayer
from zeroserve.datapath.xdp import XdpFeatures, XdpLayer
from zeroserve.plan.model import Layer, Plan

TC_NAMES = {"ingress": "zeroserve-in", "egress": "zeroserve-out"}


@dataclass
class _Loaded:
    xdp: XdpLayer | None = None
    tc: TcLayer | None = None
    sock: SockLayer | None = None

    def close(self, keep: _Loaded | None = None) -> None:
        """Close every layer but those keep holds too (reused by the next plan)."""
        kept = (keep.xdp, keep.tc, keep.sock) if keep else ()
        for layer in (self.xdp, self.tc, self.sock):
            if layer is not None and not any(layer is k for k in kept):
                layer.close()

    def shape(self) -> tuple[XdpFeatures | None, TcFeatures | None, bool]:
        return (
            self.xdp.features if self.xdp else None,
            self.tc.features if self.tc else None,
            self.sock is not None,
        )


def _shape(plan: Plan, sock: bool) -> tuple[XdpFeatures | None, TcFeatures | None, bool]:
    """The programs a plan needs: equal shapes run the same programs with other map data."""
    return (
        XdpFeatures.for_plan(plan.xdp) if plan.xdp.needed else None,
        TcFeatures.for_plan(plan.tc) if plan.tc.needed else None,
        sock,
    )


class StageError(build.BuildError):
    """A layer's program failed to compile or verify; the running programs are untouched."""

    def __init__(self, layer: Layer, text: str) -> None:
        super().__init__(text)
        self.layer = layer


@dataclass
class Staged:
    """A plan made ready beside the running one; `loaded` is None when only maps change.

    A layer whose features did not change is the running one itself (`running`), neither
    rebuilt nor re-attached.
    """

    plan: Plan
    loaded: _Loaded | None
    running: _Loaded | None = None

    def discard(self) -> None:
        if self.loaded is not None:
            self.loaded.close(keep=self.running)
            self.loaded = None


@dataclass
class Edge:
    """The attached programs of the current plan on a set of interfaces."""

    layout: PinLayout = field(default_factory=PinLayout)
    ns: str | None = None
    current: _Loaded = field(default_factory=_Loaded)
    interfaces: tuple[str, ...] = ()
    xdp_mode: attach.XdpMode = attach.XdpMode.NATIVE
    sk_link: int = -1
    plan: Plan | None = None
    sockets: Mapping[tuple[str, int], int] = field(default_factory=dict)
    stack: StackSysctls = field(init=False)

    def __post_init__(self) -> None:
        self.stack = StackSysctls(self.layout.sysctls_pin)

    def apply(self, plan: Plan, sockets: Mapping[tuple[str, int], int] | None = None) -> None:
        """Make plan the running one; sockets are the listeners sk_lookup dispatches to."""
        self.commit(self.stage(plan, bool(sockets)), sockets)

    def stage(self, plan: Plan, sock: bool) -> Staged:
        """Render, compile and verify what plan needs, unless the running programs fit it.

        sock says whether listening sockets will be dispatched. Nothing running changes:
        a compile or verifier error (BuildError) leaves the old programs in force.
        """
        mode = attach.XdpMode[plan.xdp_mode.upper()]
        if self.plan is not None and (plan.interfaces, mode) != (self.interfaces, self.xdp_mode):
            raise ValueError("interfaces and XDP mode change only with a detach first")
        if self.plan is not None and _shape(plan, sock) == self.current.shape():
            return Staged(plan, None)
        return Staged(plan, self._provision(plan, sock), self.current)

    def commit(self, staged: Staged, sockets: Mapping[tuple[str, int], int] | None) -> None:
        """Write the staged plan's rules, then swap its programs in (if it has new ones).

        On failure the interfaces already switched go back, the old plan's rules are
        written again and the old programs stay in force.
        """
        plan, sockets = staged.plan, dict(sockets or {})
        cookies = plan.xdp.syncookies is not None
        try:
            # On before the first cookie SYN-ACK can leave, off only once the last has.
            if cookies:
                self._stack(True)
            self._write(staged.loaded or self.current, plan, sockets)
            if staged.loaded is not None:
                mode = attach.XdpMode[plan.xdp_mode.upper()]
                indexes = [attach.ifindex(name, self.ns) for name in plan.interfaces]
                self._swap(staged.loaded, indexes, mode)
        except BaseException:
            staged.discard()
            if self.plan is not None:
                self._write(self.current, self.plan, self.sockets)
            self._stack(self.plan is not None and self.plan.xdp.syncookies is not None)
            raise
        if staged.loaded is not None:
            old, self.current = self.current, staged.loaded
            old.close(keep=self.current)
            self._pin_xdp()
        self.interfaces = plan.interfaces
        self.xdp_mode = attach.XdpMode[plan.xdp_mode.upper()]
        self.plan, self.sockets = plan, sockets
        if not cookies:
            self._stack(False)

    def _stack(self, syncookies: bool) -> None:
        """The namespace's sysctls as XDP SYN cookies need them while on (syncookie.py)."""
        with attach.in_netns(self.ns) if self.ns else nullcontext():
            if syncookies:
                self.stack.enable()
            else:
                self.stack.restore()

    def _pin_xdp(self) -> None:
        """Pin the XDP program now attached, if any: an agent that starts after this one
        died knows it there by id, where naming the ids on an interface would take
        BPF_PROG_GET_FD_BY_ID, which needs CAP_SYS_ADMIN."""
        self.layout.xdp_pin.unlink(missing_ok=True)
        if self.current.xdp is not None:
            libbpf.obj_pin(self.current.xdp.prog_fd, self.layout.xdp_pin)

    def left_xdp(self) -> int:
        """The id of the XDP program a dead agent left pinned as attached (0: none); the
        pin goes, so the program lives on only while it is attached."""
        if not self.layout.xdp_pin.exists():
            return 0
        fd = libbpf.obj_get(self.layout.xdp_pin)
        try:
            return libbpf.prog_info(fd).id
        finally:
            os.close(fd)
            self.layout.xdp_pin.unlink()

    def recover(self) -> dict[str, str]:
        """Put back the sysctls an agent that died with SYN cookies on left changed."""
        with attach.in_netns(self.ns) if self.ns else nullcontext():
            return self.stack.recover()

    def _provision(self, plan: Plan, sock: bool) -> _Loaded:
        xdp, tc, _ = _shape(plan, sock)
        running = self.current if self.plan is not None else _Loaded()
        new = _Loaded()
        hook = Layer.XDP
        try:
            if xdp is not None:
                same = running.xdp is not None and running.xdp.features == xdp
                new.xdp = running.xdp if same else XdpLayer.load(xdp, self.layout)
            hook = Layer.TC
            if tc is not None:
                same = running.tc is not None and running.tc.features == tc
                new.tc = running.tc if same else TcLayer.load(tc, self.layout)
            hook = Layer.SOCK
            if sock:
                new.sock = running.sock or SockLayer.load(SockFeatures(), self.layout)
        except build.BuildError as err:
            new.close(keep=running)
            raise StageError(hook, str(err)) from err
        except BaseException:
            new.close(keep=running)
            raise
        return new

    @staticmethod
    def _write(loaded: _Loaded, plan: Plan, sockets: Mapping[tuple[str, int], int]) -> None:
        """Rules into the maps, which old and new programs share."""
        if loaded.xdp is not None:
            loaded.xdp.apply(plan.xdp)
        if loaded.tc is not None:
            loaded.tc.apply(plan.tc)
        if loaded.sock is not None:
            loaded.sock.set_dispatch(sockets)

    def _swap(self, new: _Loaded, indexes: list[int], mode: attach.XdpMode) -> None:
        undo: list[Callable[[], None]] = []
        kept = new.sock is self.current.sock
        link = self.sk_link if kept else -1
        try:
            for index in indexes:
                self._swap_xdp(index, new, mode, undo)
                self._swap_tc(index, new, undo)
            if new.sock is not None and not kept:
                link = attach.attach_sk_lookup(new.sock.prog_fd, self.ns)
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        # The new link runs before the old one closes: lookups never go without.
        if link != self.sk_link and self.sk_link >= 0:
            os.close(self.sk_link)
        self.sk_link = link

    def _swap_xdp(
        self, index: int, new: _Loaded, mode: attach.XdpMode, undo: list[Callable[[], None]]
    ) -> None:
        old = self.current.xdp
        if new.xdp is old:
            return
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
        if new.tc is old:
            return
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
        self.layout.xdp_pin.unlink(missing_ok=True)
        self.current.close()
        self.current = _Loaded()
        self.interfaces = ()
        self.plan, self.sockets = None, {}
        self._stack(False)
