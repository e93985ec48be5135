"""Capabilities decide whether the edge layers load, not the uid."""

from __future__ import annotations

import subprocess
import sys

from zeroserve.datapath.capabilities import CAP_BPF, CAP_NET_ADMIN, has_capability


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
