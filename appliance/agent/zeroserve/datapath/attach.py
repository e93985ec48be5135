"""Attach loaded programs to hooks. The only module that imports pyroute2.

XDP goes through IFLA_XDP on a link: a first attach uses
XDP_FLAGS_UPDATE_IF_NOEXIST (so we never clobber someone else's program) and a
reload uses XDP_FLAGS_REPLACE with the expected old fd, so there is no window
with nothing attached and a concurrent change makes the swap fail instead of
being lost. That message is libbpf's (bpf_xdp_attach), not pyroute2's: pyroute2
0.7, Debian 12's, packs IFLA_XDP_FLAGS into 16 bits, which the kernel refuses
(ERANGE). TC programs go into a clsact qdisc as direct-action cls_bpf
filters, replaced in place at a fixed priority and handle. sk_lookup programs are
attached to a network namespace as a BPF link (libbpf's bpf_link_create).

Every function takes an optional `netns` name so the same code serves the host
and the scratch namespaces of doctor and tests.
"""

from __future__ import annotations

import enum
import errno
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from pyroute2 import IPRoute, NetlinkError, netns
from pyroute2.netlink.rtnl.ifinfmsg import (
    XDP_FLAGS_DRV_MODE,
    XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST,
)

from zeroserve.datapath import libbpf

# clsact's ingress/egress minor handles (TC_H_MIN_INGRESS/EGRESS under TC_H_CLSACT).
_TC_PARENT = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
_IFF_UP, _IFF_LOOPBACK = 0x1, 0x8
# One zeroserve filter per direction; a fixed slot lets "replace" swap it atomically.
_TC_PRIO = 1
_TC_HANDLE = 1


class AttachError(Exception):
    """The kernel refused an attach or detach; str() says where and why."""


class XdpMode(enum.Enum):
    NATIVE = XDP_FLAGS_DRV_MODE
    GENERIC = XDP_FLAGS_SKB_MODE


@contextmanager
def _ipr(ns: str | None) -> Iterator[IPRoute]:
    # The socket is made inside ns and stays there; IPRoute(netns=) is pyroute2 0.9's
    # alone (0.7, Debian 12's, refuses the keyword).
    with in_netns(ns) if ns else nullcontext():
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _fail(what: str, err: NetlinkError) -> AttachError:
    code = err.code if isinstance(err.code, int) else errno.EIO
    return AttachError(f"{what}: {os.strerror(code)}")


def ifindex(name: str, ns: str | None = None) -> int:
    with _ipr(ns) as ipr:
        found = ipr.link_lookup(ifname=name)
    if not found:
        raise AttachError(f"no interface {name!r}" + (f" in netns {ns}" if ns else ""))
    return found[0]


def up_interfaces(ns: str | None = None) -> tuple[str, ...]:
    """Names of the links that are administratively up, loopback excepted."""
    with _ipr(ns) as ipr:
        links = ipr.get_links()
    return tuple(
        link.get_attr("IFLA_IFNAME")
        for link in links
        if link["flags"] & _IFF_UP and not link["flags"] & _IFF_LOOPBACK
    )


def all_interfaces(ns: str | None = None) -> dict[str, int]:
    """Every link of the namespace: name -> ifindex."""
    with _ipr(ns) as ipr:
        return {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}


def attach_xdp(
    index: int,
    prog_fd: int,
    mode: XdpMode = XdpMode.NATIVE,
    replace_fd: int | None = None,
    ns: str | None = None,
) -> None:
    """Attach prog_fd; with replace_fd, atomically swap it for that attached program."""
    flags = mode.value | (XDP_FLAGS_UPDATE_IF_NOEXIST if replace_fd is None else 0)
    _set_xdp(
        f"XDP {mode.name.lower()} attach on ifindex {index}", index, prog_fd, flags, replace_fd, ns
    )


def detach_xdp(index: int, mode: XdpMode = XdpMode.NATIVE, ns: str | None = None) -> None:
    _set_xdp(f"XDP detach on ifindex {index}", index, -1, mode.value, None, ns)


def _set_xdp(
    what: str, index: int, prog_fd: int, flags: int, replace_fd: int | None, ns: str | None
) -> None:
    with in_netns(ns) if ns else nullcontext():
        try:
            libbpf.xdp_attach(index, prog_fd, flags, replace_fd)
        except libbpf.BpfError as err:
            detail = f" ({err.kernel})" if err.kernel else ""
            raise AttachError(f"{what}: {os.strerror(err.errno)}{detail}") from err


def xdp_prog_id(index: int, ns: str | None = None) -> int:
    """Id of the XDP program attached to the link, 0 if none."""
    with _ipr(ns) as ipr:
        link = ipr.get_links(index)[0]
    xdp = link.get_attr("IFLA_XDP")
    return (xdp.get_attr("IFLA_XDP_PROG_ID") or 0) if xdp else 0


def attach_tc(index: int, prog_fd: int, direction: str, name: str, ns: str | None = None) -> None:
    """Put prog_fd in the link's clsact qdisc (created if absent) as direct-action filter."""
    with _ipr(ns) as ipr:
        try:
            ipr.tc("add", "clsact", index)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise _fail(f"clsact qdisc on ifindex {index}", err) from err
        try:
            ipr.tc(
                "replace-filter",
                "bpf",
                index,
                _TC_HANDLE,
                fd=prog_fd,
                name=name,
                parent=_TC_PARENT[direction],
                prio=_TC_PRIO,
                direct_action=True,
            )
        except NetlinkError as err:
            raise _fail(f"cls_bpf {direction} filter on ifindex {index}", err) from err


def tc_filter_names(index: int, direction: str, ns: str | None = None) -> list[str]:
    """Names of the cls_bpf filters in the link's clsact qdisc for direction.

    Names, not program ids: pyroute2 does not decode TCA_BPF_ID, so callers that
    need to tell versions apart put that in the name they attach with.
    """
    with _ipr(ns) as ipr:
        try:
            filters = ipr.get_filters(index=index, parent=_TC_PARENT[direction])
        except NetlinkError:
            return []
    names = []
    for flt in filters:
        opts = flt.get_attr("TCA_OPTIONS")
        name = opts.get_attr("TCA_BPF_NAME") if opts else None
        if name:
            names.append(name)
    return names


def detach_tc(index: int, ns: str | None = None) -> None:
    """Remove the clsact qdisc and with it every zeroserve TC filter."""
    with _ipr(ns) as ipr:
        try:
            ipr.tc("del", "clsact", index)
        except NetlinkError as err:
            raise _fail(f"remove clsact on ifindex {index}", err) from err


def attach_sk_lookup(prog_fd: int, ns: str | None = None) -> int:
    """Link prog_fd to a network namespace's socket lookup; returns the link fd.

    The program stays attached while the link fd (or a pin of it) lives.
    """
    path = f"/run/netns/{ns}" if ns else "/proc/self/ns/net"
    ns_fd = os.open(path, os.O_RDONLY)
    try:
        return libbpf.link_create(prog_fd, ns_fd, libbpf.ATTACH_SK_LOOKUP)
    finally:
        os.close(ns_fd)


@dataclass(frozen=True)
class VethPair:
    """A veth link between two scratch namespaces, addressed from 198.18.0.0/15.

    `inner` (in `ns`) plays the appliance's interface, `outer` (in `peer_ns`) the
    client side; traffic between them crosses the link and so meets whatever
    programs are attached to it.
    """

    ns: str
    peer_ns: str
    inner: int
    outer: int
    inner_addr: str
    outer_addr: str


def _bring_up(ns: str, ifname: str, addr: str) -> int:
    with _ipr(ns) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr("add", index=index, address=addr, prefixlen=30)
        for up in (index, ipr.link_lookup(ifname="lo")[0]):
            ipr.link("set", index=up, state="up")
    return index


@contextmanager
def scratch_veth(prefix: str = "zs") -> Iterator[VethPair]:
    """Two fresh namespaces joined by a veth pair, links and lo up; removed on exit."""
    tag = uuid.uuid4().hex[:8]
    ns, peer_ns = f"{prefix}-{tag}", f"{prefix}-{tag}-peer"
    inner_addr, outer_addr = "198.18.0.1", "198.18.0.2"
    created: list[str] = []
    try:
        for name in (ns, peer_ns):
            netns.create(name)
            created.append(name)
        with _ipr(ns) as ipr:
            ipr.link("add", ifname="zs0", kind="veth", peer={"ifname": "zs1"})
            ipr.link("set", index=ipr.link_lookup(ifname="zs1")[0], net_ns_fd=peer_ns)
        inner = _bring_up(ns, "zs0", inner_addr)
        outer = _bring_up(peer_ns, "zs1", outer_addr)
        yield VethPair(ns, peer_ns, inner, outer, inner_addr, outer_addr)
    finally:
        for name in created:
            netns.remove(name)


@contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the block in network namespace ns; sockets made in it stay there."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


def add_route(ns: str, dst: str, gateway: str | None = None, local: bool = False) -> None:
    """Route dst (a prefix) via gateway, or as local: delivered to this box's sockets
    although no interface has the address (the kernel's AnyIP)."""
    with _ipr(ns) as ipr:
        if local:
            lo = ipr.link_lookup(ifname="lo")[0]
            ipr.route("add", dst=dst, type="local", oif=lo, table=255, scope=254)
        else:
            ipr.route("add", dst=dst, gateway=gateway)


@dataclass(frozen=True)
class Spoke:
    """A namespace joined to the hub by its own veth pair, on 198.18.<n>.0/30."""

    name: str
    ns: str
    hub_index: int  # the hub's end of the pair, in the hub namespace
    index: int  # the spoke's end, in ns
    hub_addr: str
    addr: str


@dataclass(frozen=True)
class Star:
    hub: str
    spokes: dict[str, Spoke]


@contextmanager
def scratch_star(names: Sequence[str], prefix: str = "zs") -> Iterator[Star]:
    """A hub namespace (the appliance) and one namespace per name (clients,
    attackers), each on its own veth pair; every spoke routes 198.18.0.0/15 via
    the hub. All of it is removed on exit, whatever happened."""
    tag = uuid.uuid4().hex[:8]
    hub = f"{prefix}-{tag}-hub"
    created: list[str] = []
    try:
        netns.create(hub)
        created.append(hub)
        spokes = {}
        for n, name in enumerate(names, start=1):
            ns = f"{prefix}-{tag}-{name}"
            netns.create(ns)
            created.append(ns)
            hub_if = f"zsh{n}"
            with _ipr(hub) as ipr:
                ipr.link("add", ifname=hub_if, kind="veth", peer={"ifname": "zs0"})
                ipr.link("set", index=ipr.link_lookup(ifname="zs0")[0], net_ns_fd=ns)
            hub_addr, addr = f"198.18.{n}.1", f"198.18.{n}.2"
            hub_index = _bring_up(hub, hub_if, hub_addr)
            index = _bring_up(ns, "zs0", addr)
            add_route(ns, "198.18.0.0/15", gateway=hub_addr)
            spokes[name] = Spoke(name, ns, hub_index, index, hub_addr, addr)
        yield Star(hub, spokes)
    finally:
        for name in created:
            netns.remove(name)
