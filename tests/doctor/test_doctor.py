"""`zeroserve doctor`: every check passes on this machine, and each one, aimed at
something that must fail, fails with its cause and fix. No mocks: the failures
come from the kernel (a bad program, a wrong program type, a missing path, a ring
too large, a process without CAP_IPC_LOCK)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zeroserve.datapath import libbpf
from zeroserve.doctor import CHECKS, probes, render_table, run_check, run_checks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="doctor probes need root")


def _fails(probe, **params):
    result = run_check("probe", lambda: probe(**params))
    assert not result.ok, result
    assert result.fix, "a failure must say how to fix it"
    return result


def _netns_names() -> set[str]:
    path = Path("/run/netns")
    return set(os.listdir(path)) if path.is_dir() else set()


def test_every_check_passes_here_and_leaves_nothing_behind():
    before_ns = _netns_names()
    results = run_checks()
    assert [r.name for r in results] == [name for name, _ in CHECKS]
    failed = [r for r in results if not r.ok]
    assert not failed, render_table(failed)
    # Only what the probes made: other suites may add or remove namespaces meanwhile.
    assert not _netns_names() - before_ns
    assert not [p for p in os.listdir("/sys/fs/bpf") if p.startswith("zeroserve-doctor")]


def test_bpf_syscall_failure():
    r = _fails(probes.probe_bpf_syscall, map_type=9999)
    assert (
        r.detail == "bpf(BPF_MAP_CREATE) failed: create map zs_doctor (type 9999): Invalid argument"
    )


def test_bpffs_failure():
    r = _fails(probes.probe_bpffs, path=Path("/proc/zeroserve-absent/bpf"))
    assert r.detail == "cannot create /proc/zeroserve-absent/bpf: No such file or directory"
    assert r.fix.startswith("mount -t bpf bpf /sys/fs/bpf")


def test_kernel_headers_failure(tmp_path):
    r = _fails(probes.probe_kernel_headers, modules_dir=tmp_path)
    assert "do not hold a header tree bcc can use" in r.detail
    assert "kernel_headers --ensure" in r.fix


def test_bcc_failure_carries_the_compiler_diagnostic():
    r = _fails(probes.probe_bcc_xdp, source="int zs_doctor(struct xdp_md *ctx) { return nope; }")
    assert r.detail.startswith("could not build and load the probe program:")
    assert "use of undeclared identifier 'nope'" in r.detail


def test_bcc_failure_carries_the_verifier_log():
    src = probes.XDP_PASS_SRC.replace("return XDP_PASS;", "return *(int *)(long)ctx->data;")
    r = _fails(probes.probe_bcc_xdp, source=src)
    assert "invalid access to packet" in r.detail


def test_xdp_native_failure():
    r = _fails(probes.probe_xdp_native, prog_type=libbpf.PROG_TYPE_SCHED_CLS)
    assert r.detail.startswith("XDP native attach on ifindex ")
    assert r.detail.endswith(": Invalid argument")


def test_xdp_syncookie_failure():
    # A socket filter may not call the SYN cookie helpers, as no program of a kernel < 6.0 may.
    r = _fails(probes.probe_xdp_syncookie, prog_type=libbpf.PROG_TYPE_SOCKET_FILTER)
    assert "cannot use helper bpf_tcp_raw_gen_syncookie_ipv4" in r.detail
    assert "kernel >= 6.0" in r.fix


def test_tc_failure():
    r = _fails(probes.probe_tc_clsact, prog_type=libbpf.PROG_TYPE_XDP)
    assert r.detail.startswith("cls_bpf ingress filter on ifindex ")
    assert r.detail.endswith(": Invalid argument")


def test_sk_lookup_failure():
    # Without expected_attach_type=BPF_SK_LOOKUP the kernel refuses the program.
    r = _fails(probes.probe_sk_lookup, attach_type=-1)
    assert "Failed to load BPF program b'zs_doctor': Invalid argument" in r.detail
    assert "sk_lookup" in r.fix


def test_io_uring_missing_opcode():
    r = _fails(probes.probe_io_uring, opcodes={"IORING_OP_FUTURE": 250}, use_engine=False)
    assert r.detail == "ctypes probe: kernel lacks IORING_OP_FUTURE"


def test_io_uring_setup_failure():
    r = _fails(probes.probe_io_uring, entries=1 << 20, use_engine=False)
    assert r.detail == "ctypes probe: io_uring_setup: Invalid argument"


def test_io_uring_ctypes_probe_sees_the_engine_opcodes():
    ok = run_check("probe", lambda: probes.probe_io_uring(use_engine=False))
    assert ok.ok, ok
    assert ok.detail == "ctypes probe: ring set up; 10 opcodes supported"


def test_io_uring_sysctl_failure(tmp_path):
    sysctl = tmp_path / "io_uring_disabled"
    sysctl.write_text("2\n")
    r = _fails(probes.probe_io_uring_sysctl, path=sysctl)
    assert r.detail == "kernel.io_uring_disabled = 2: io_uring is refused to this process"


def test_memlock_failure_without_cap_ipc_lock():
    # A child without CAP_IPC_LOCK (dropped from the bounding set) and a 1 MiB limit.
    code = (
        "from zeroserve.doctor import probes, run_check;"
        "r = run_check('memlock', probes.probe_memlock); print(r.ok, r.detail, sep='|')"
    )
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-ipc_lock",
            "--inh-caps=-ipc_lock",
            "prlimit",
            "--memlock=1048576",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "False|RLIMIT_MEMLOCK 1024 KiB < 65536 KiB and no CAP_IPC_LOCK"


def test_a_crashing_probe_is_a_failure_not_a_traceback():
    def broken() -> str:
        return {}["missing"]

    r = run_check("broken", broken)
    assert not r.ok
    assert r.detail == "probe crashed: KeyError: 'missing'"


def test_render_table_shows_cause_and_fix_of_failures(tmp_path):
    results = run_checks(
        [
            ("bpf syscall", probes.probe_bpf_syscall),
            ("kernel headers", lambda: probes.probe_kernel_headers(tmp_path)),
        ]
    )
    table = render_table(results).splitlines()
    assert table[0].split() == ["CHECK", "RESULT", "DETAIL"]
    assert table[1].startswith("bpf syscall     ok      bpf(2) created")
    assert table[2].startswith("kernel headers  FAIL    ")
    assert table[3].strip().startswith("fix: run `python -m zeroserve.datapath.kernel_headers")
    assert table[-1] == "2 checks, 1 failed"


# The appliance unit's grant (playbooks/roles/zeroserve/defaults/main.yml), to a user
# with no account.
UNIT_CAPS = ("bpf", "perfmon", "net_admin", "net_bind_service")
SERVICE_UID = 64_123


@pytest.mark.parametrize(
    ("dropped", "row"),
    [
        (
            None,
            [
                "edge capabilities  ok      XDP, TC and sk_lookup have what they need"
                " (CAP_BPF CAP_PERFMON CAP_NET_ADMIN)"
            ],
        ),
        (
            "perfmon",
            [
                "edge capabilities  FAIL    the XDP and TC programs need CAP_PERFMON (the verifier"
                " refuses packet parsing without it); effective capabilities:"
                " CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_BPF",
                " " * 27 + "fix: grant CAP_BPF CAP_PERFMON CAP_NET_ADMIN (the unit's"
                " AmbientCapabilities= and CapabilityBoundingSet=), or run as root",
            ],
        ),
    ],
)
def test_edge_capabilities_as_the_service_user(zeroserve_bin, dropped, row):
    caps = ",".join(f"+{c}" for c in UNIT_CAPS if c != dropped)
    cmd = [
        "setpriv",
        f"--reuid={SERVICE_UID}",
        f"--regid={SERVICE_UID}",
        "--clear-groups",
        f"--inh-caps=-all,{caps}",
        f"--ambient-caps={caps}",
        f"--bounding-set=-all,{caps}",
        str(zeroserve_bin),
        "doctor",
    ]
    env = {**os.environ, "HOME": "/nonexistent"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd="/")
    lines = out.stdout.splitlines()
    assert lines[1 : 1 + len(row)] == row, out.stdout + out.stderr
    # The probes that need scratch namespaces say so instead of crashing.
    assert "probe crashed" not in out.stdout
    assert out.returncode == 1 and "Traceback" not in out.stderr
