"""`zeroserve doctor`: run every probe and report pass/fail with cause and fix."""

from __future__ import annotations

from collections.abc import Callable

from zeroserve.doctor import probes
from zeroserve.doctor.result import CheckResult, ProbeFailure, render_table

__all__ = ["CHECKS", "CheckResult", "render_table", "run_checks", "run_check"]

# In dependency order: a failure early on explains the failures after it.
CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("edge capabilities", probes.probe_edge_capabilities),
    ("bpf syscall", probes.probe_bpf_syscall),
    ("bpffs", probes.probe_bpffs),
    ("kernel headers", probes.probe_kernel_headers),
    ("bcc compile+load", probes.probe_bcc_xdp),
    ("xdp native (veth)", probes.probe_xdp_native),
    ("xdp syn cookies", probes.probe_xdp_syncookie),
    ("tc clsact+cls_bpf", probes.probe_tc_clsact),
    ("sk_lookup", probes.probe_sk_lookup),
    ("io_uring", probes.probe_io_uring),
    ("io_uring sysctl", probes.probe_io_uring_sysctl),
    ("memlock", probes.probe_memlock),
]


def run_check(name: str, probe: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, True, probe())
    except ProbeFailure as failure:
        return CheckResult(name, False, failure.cause, failure.fix)
    except Exception as err:  # noqa: BLE001 - one broken probe must not hide the rest
        return CheckResult(
            name,
            False,
            f"probe crashed: {type(err).__name__}: {err}",
            "report this as a zeroserve bug",
        )


def run_checks(checks: list[tuple[str, Callable[[], str]]] | None = None) -> list[CheckResult]:
    return [run_check(name, probe) for name, probe in (checks or CHECKS)]
