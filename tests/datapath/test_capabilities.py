"""Capabilities decide whether the edge layers load, not the uid."""

from __future__ import annotations

import resource
import subprocess
import sys

from zeroserve.datapath.capabilities import (
    CAP_BPF,
    CAP_NET_ADMIN,
    CAP_NET_BIND_SERVICE,
    CAP_PERFMON,
    CAP_SYS_ADMIN,
    explain,
    has_capability,
    memlock_shortfall,
)


def test_reads_effective_set(tmp_path):
    status = tmp_path / "status"
    status.write_text(f"Name:\tx\nCapEff:\t{(1 << CAP_BPF) | (1 << CAP_NET_ADMIN):016x}\n")
    assert has_capability(CAP_BPF, status) and has_capability(CAP_NET_ADMIN, status)
    assert not has_capability(0, status)


def test_unprivileged_user_with_granted_caps_may_load():
    # The appliance's systemd unit grants exactly these to a non-root user.
    code = "from zeroserve.datapath.capabilities import may_load_bpf; print(may_load_bpf())"
    base = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    granted = ["--inh-caps=+bpf,+net_admin", "--ambient-caps=+bpf,+net_admin"]

    def run(extra: list[str]) -> subprocess.CompletedProcess[str]:
        cmd = [*base, *extra, sys.executable, "-c", code]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    with_caps = run(granted)
    assert with_caps.stdout.strip() == "True", with_caps.stderr
    assert run([]).stdout.strip() == "False"


UNIT = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_NET_ADMIN) | (1 << CAP_NET_BIND_SERVICE)


def test_explain_names_only_what_is_absent():
    assert explain(["xdp", "tc", "sock"], UNIT) is None
    without_perfmon = UNIT & ~(1 << CAP_PERFMON)
    assert explain(["sock"], without_perfmon) is None, "sk_lookup parses no packets"
    assert explain(["xdp", "sock"], without_perfmon) == (
        "the XDP program needs CAP_PERFMON (the verifier refuses packet parsing without it);"
        " effective capabilities: CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_BPF"
    )


def test_cap_sys_admin_stands_in_for_bpf_and_perfmon_not_net_admin():
    assert explain(["xdp"], (1 << CAP_SYS_ADMIN) | (1 << CAP_NET_ADMIN)) is None
    assert explain(["tc"], 1 << CAP_SYS_ADMIN) == (
        "the TC program needs CAP_NET_ADMIN (XDP and TC programs, their hooks and the socket"
        " map); effective capabilities: CAP_SYS_ADMIN"
    )


def test_memlock_matters_only_before_memcg_accounting():
    assert memlock_shortfall("5.10.0-23-amd64", 64 << 10) == (
        "kernel 5.10.0-23-amd64 charges BPF maps to RLIMIT_MEMLOCK, which is 64 KiB"
        " (LimitMEMLOCK=infinity in the unit)"
    )
    assert memlock_shortfall("5.10.0-23-amd64", resource.RLIM_INFINITY) is None
    assert memlock_shortfall("6.1.0-56-amd64", 64 << 10) is None
