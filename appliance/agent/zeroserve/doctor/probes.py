"""One probe per thing zeroserve needs from the kernel and the box.

A probe does the real operation on a throwaway object (a map, a program, a veth
pair in a scratch namespace, a ring) and cleans up after itself. It returns what
it verified, or raises ProbeFailure with the cause and a fix. Every probe takes
its target as a parameter with the production default, so tests can aim it at
something that must fail (a bad program, a missing path, an impossible limit).
"""

from __future__ import annotations

import importlib
import os
import resource
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from zeroserve.datapath import attach, build, capabilities, kernel_headers, libbpf, pins
from zeroserve.datapath.capabilities import CAP_IPC_LOCK, has_capability
from zeroserve.doctor import uring
from zeroserve.doctor.result import ProbeFailure

XDP_PASS_SRC = """
#include <uapi/linux/bpf.h>
int zs_doctor(struct xdp_md *ctx) { return XDP_PASS; }
"""
TC_PASS_SRC = """
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
int zs_doctor(struct __sk_buff *skb) { return TC_ACT_OK; }
"""
SK_LOOKUP_PASS_SRC = """
#include <uapi/linux/bpf.h>
int zs_doctor(struct bpf_sk_lookup *ctx) { return SK_PASS; }
"""
# Both SYN cookie helpers, on headers on the stack: the verifier judges the calls
# before any packet access, so a program type without them fails on the helper.
SYNCOOKIE_SRC = """
#include <uapi/linux/bpf.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
int zs_doctor(void *ctx) {
	struct iphdr ip4 = {};
	struct ipv6hdr ip6 = {};
	struct tcphdr th = {};
	bpf_tcp_raw_gen_syncookie_ipv4(&ip4, &th, sizeof(th));
	bpf_tcp_raw_gen_syncookie_ipv6(&ip6, &th, sizeof(th));
	return XDP_PASS;
}
"""

# The engine's registered buffers are pinned memory, charged to RLIMIT_MEMLOCK
# unless the process holds CAP_IPC_LOCK.
REQUIRED_MEMLOCK = 64 << 20

_FIX_HEADERS = "run `python -m zeroserve.datapath.kernel_headers --ensure` (make setup does)"
_FIX_BCC = "install python3-bpfcc and linux-headers-amd64 (make setup), then " + _FIX_HEADERS


@contextmanager
def _built(
    source: str, prog_type: int, attach_type: int = -1, fix: str = _FIX_BCC
) -> Iterator[build.Built]:
    """Compile and load one program through the production build path, in scratch pins."""
    layout = pins.PinLayout(pins.BPFFS / f"zeroserve-doctor-{os.getpid()}")
    try:
        try:
            built = build.build(
                source, [build.ProgramSpec("zs_doctor", prog_type, attach_type)], layout
            )
        except build.BuildError as err:
            raise ProbeFailure(f"could not build and load the probe program:\n{err}", fix) from err
        with built:
            yield built
    finally:
        layout.remove_all()


@contextmanager
def _scratch_veth() -> Iterator[attach.VethPair]:
    """attach.scratch_veth, whose namespaces only a privileged doctor can make."""
    with ExitStack() as stack:
        try:
            veth = stack.enter_context(attach.scratch_veth("zs-doctor"))
        except PermissionError as err:
            raise ProbeFailure(
                f"cannot make a scratch network namespace for the probe: {err.strerror}"
                f" (effective capabilities: {capabilities.shown(capabilities.effective())})",
                "run zeroserve doctor as root: its probes attach in namespaces of their own",
            ) from err
        yield veth


def probe_edge_capabilities(status: Path = Path("/proc/self/status")) -> str:
    """What each edge layer needs of the effective capabilities (the unit's grant)."""
    mask = capabilities.effective(status)
    lacking = capabilities.explain(list(capabilities.LAYER_NEEDS), mask)
    needed = {n.cap: None for needs in capabilities.LAYER_NEEDS.values() for n in needs}
    names = " ".join(capabilities.cap_name(c) for c in needed)
    if lacking:
        raise ProbeFailure(
            lacking,
            f"grant {names} (the unit's AmbientCapabilities= and CapabilityBoundingSet=),"
            " or run as root",
        )
    return f"XDP, TC and sk_lookup have what they need ({names})"


def probe_bpf_syscall(map_type: int = libbpf.MAP_TYPE_ARRAY) -> str:
    try:
        fd = libbpf.map_create(map_type, "zs_doctor", 4, 8, 1)
    except (libbpf.BpfError, OSError) as err:
        raise ProbeFailure(
            f"bpf(BPF_MAP_CREATE) failed: {err}",
            "run as root (CAP_BPF, CAP_NET_ADMIN) on a kernel with CONFIG_BPF_SYSCALL=y",
        ) from err
    os.close(fd)
    return "bpf(2) created and freed an array map"


def probe_bpffs(path: Path = pins.BPFFS) -> str:
    try:
        mounted_now = pins.ensure_bpffs(path)
    except pins.BpffsError as err:
        fix = f"mount -t bpf bpf {pins.BPFFS} (or add it to /etc/fstab)"
        raise ProbeFailure(str(err), fix) from err
    return f"bpffs {'mounted now' if mounted_now else 'mounted'} at {path}"


def probe_kernel_headers(modules_dir: Path | None = None) -> str:
    modules_dir = modules_dir or Path("/lib/modules") / os.uname().release
    if not kernel_headers.is_usable(modules_dir):
        raise ProbeFailure(
            f"{modules_dir}/build and {modules_dir}/source do not hold a header tree bcc can use",
            _FIX_HEADERS,
        )
    return f"{modules_dir}/build -> {(modules_dir / 'build').resolve()}"


def probe_bcc_xdp(source: str = XDP_PASS_SRC) -> str:
    with _built(source, libbpf.PROG_TYPE_XDP) as built:
        info = built.programs["zs_doctor"].info
    return f"compiled and loaded an XDP program (id {info.id}) in a child process"


def probe_xdp_native(prog_type: int = libbpf.PROG_TYPE_XDP) -> str:
    with _built(XDP_PASS_SRC, prog_type) as built, _scratch_veth() as veth:
        fd = built.fd("zs_doctor")
        try:
            attach.attach_xdp(veth.inner, fd, attach.XdpMode.NATIVE, ns=veth.ns)
            attached = attach.xdp_prog_id(veth.inner, veth.ns)
            attach.detach_xdp(veth.inner, attach.XdpMode.NATIVE, ns=veth.ns)
        except attach.AttachError as err:
            raise ProbeFailure(
                str(err), "use a kernel >= 5.9 whose veth driver supports native XDP (CONFIG_VETH)"
            ) from err
    want = built.programs["zs_doctor"].info.id
    if attached != want:
        raise ProbeFailure(
            f"veth reports XDP program id {attached}, expected {want}",
            "another agent may be attaching to the same links; rerun",
        )
    return "native XDP attach and detach on a veth in a scratch namespace"


def probe_xdp_syncookie(prog_type: int = libbpf.PROG_TYPE_XDP) -> str:
    fix = (
        "use a kernel >= 6.0 built with CONFIG_SYN_COOKIES (bpf_tcp_raw_gen_syncookie_ipv4/6),"
        " or leave syn_cookies out of the appliance config"
    )
    with _built(SYNCOOKIE_SRC, prog_type, fix=fix) as built:
        info = built.programs["zs_doctor"].info
    return f"XDP program calling bpf_tcp_raw_gen_syncookie_ipv4/6 loaded (id {info.id})"


def probe_tc_clsact(prog_type: int = libbpf.PROG_TYPE_SCHED_CLS) -> str:
    with _built(TC_PASS_SRC, prog_type) as built, _scratch_veth() as veth:
        try:
            attach.attach_tc(veth.inner, built.fd("zs_doctor"), "ingress", "zs_doctor", veth.ns)
            names = attach.tc_filter_names(veth.inner, "ingress", veth.ns)
            attach.detach_tc(veth.inner, veth.ns)
        except attach.AttachError as err:
            raise ProbeFailure(
                str(err), "use a kernel with CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF"
            ) from err
    if "zs_doctor" not in names:
        raise ProbeFailure(
            f"clsact ingress lists {names}, not the filter just attached",
            "check for another tool managing tc filters on new links",
        )
    return "clsact qdisc and direct-action cls_bpf filter in a scratch namespace"


def probe_sk_lookup(attach_type: int = libbpf.ATTACH_SK_LOOKUP) -> str:
    fix = "use a kernel >= 5.9 built with CONFIG_BPF_SYSCALL and CONFIG_INET (BPF sk_lookup)"
    with _built(SK_LOOKUP_PASS_SRC, libbpf.PROG_TYPE_SK_LOOKUP, attach_type, fix) as built:
        with _scratch_veth() as veth:
            try:
                link = attach.attach_sk_lookup(built.fd("zs_doctor"), veth.ns)
            except libbpf.BpfError as err:
                raise ProbeFailure(str(err), fix) from err
            os.close(link)
    return "sk_lookup program loaded and linked to a scratch namespace"


def _uring_report(
    opcodes: dict[str, int] | None, entries: int, use_engine: bool
) -> tuple[str, bool, dict[str, bool], str | None]:
    """(which probe, ring set up, opcode -> supported, error); the engine's own probe
    when it imports, since its opcode list is what it really uses."""
    note = ""
    if use_engine:
        try:
            engine = importlib.import_module("zeroserve._engine")
        except ImportError as err:
            note = f" (engine not importable: {err})"
        else:
            report = engine.probe()
            return "engine probe", report["setup"], report["opcodes"], report["error"]
    found = uring.probe(opcodes, entries)
    return f"ctypes probe{note}", found.setup, found.opcodes, found.error


def probe_io_uring(
    opcodes: dict[str, int] | None = None, entries: int = 2, use_engine: bool = True
) -> str:
    source, setup, supported, error = _uring_report(opcodes, entries, use_engine)
    if not setup or error:
        raise ProbeFailure(
            f"{source}: {error or 'io_uring_setup failed'}",
            "use a kernel with CONFIG_IO_URING=y and kernel.io_uring_disabled=0",
        )
    missing = sorted(name for name, ok in supported.items() if not ok)
    if missing:
        raise ProbeFailure(
            f"{source}: kernel lacks {', '.join(missing)}",
            "use a kernel >= 6.1 (the engine's minimum)",
        )
    return f"{source}: ring set up; {len(supported)} opcodes supported"


def probe_io_uring_sysctl(path: Path = Path("/proc/sys/kernel/io_uring_disabled")) -> str:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return f"{path} absent: this kernel does not restrict io_uring"
    if value == "0":
        return "kernel.io_uring_disabled = 0"
    if value == "1" and os.geteuid() == 0:
        return "kernel.io_uring_disabled = 1 (privileged only); zeroserve runs as root"
    raise ProbeFailure(
        f"kernel.io_uring_disabled = {value}: io_uring is refused to this process",
        "sysctl -w kernel.io_uring_disabled=0 (and persist it in /etc/sysctl.d)",
    )


def probe_memlock(required: int = REQUIRED_MEMLOCK) -> str:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    shown = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft >> 10} KiB"
    if soft == resource.RLIM_INFINITY or soft >= required:
        return f"RLIMIT_MEMLOCK {shown}"
    if has_capability(CAP_IPC_LOCK):
        return f"RLIMIT_MEMLOCK {shown}, but CAP_IPC_LOCK lifts it"
    raise ProbeFailure(
        f"RLIMIT_MEMLOCK {shown} < {required >> 10} KiB and no CAP_IPC_LOCK",
        "raise it: LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited`",
    )
