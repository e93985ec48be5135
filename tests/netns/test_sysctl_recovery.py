"""An agent killed with -9 while XDP SYN cookies are on leaves the hub's
tcp_syncookies and tcp_timestamps at 2; the next agent on the same bpffs puts the
namespace's own values back from the pinned copy, rather than taking 2 and 2 for them.

`ip netns exec` gives every agent a mount namespace and bpffs of its own, as if each
were the first since boot; here the agents enter one mount namespace (with its own
bpffs, so the host's pins are never touched), as successive agents of a box share
/sys/fs/bpf.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.netns.test_agent import DENYING_SITE, running, start_agent, status
from tests.netns.test_syncookie import SYSCTLS, sysctl
from zeroserve.datapath import attach

pytestmark = pytest.mark.netns

# Not the defaults of a new namespace (1 and 1), so a value put back is the namespace's.
ORIGINAL = {"net.ipv4.tcp_syncookies": "0", "net.ipv4.tcp_timestamps": "1"}
ON = {name: "2" for name in SYSCTLS}


def settings(ns: str) -> dict[str, str]:
    return {name: sysctl(ns, name) for name in SYSCTLS}


@pytest.fixture
def shared_mounts(star: attach.Star) -> Iterator[list[str]]:
    """A process holding a mount namespace of the hub with a bpffs of its own; yields
    the prefix that runs a command in it (and in the hub's network namespace)."""
    mount = "mount -t bpf bpf /sys/fs/bpf && echo ready && exec sleep infinity"
    holder = subprocess.Popen(
        ["ip", "netns", "exec", star.hub, "sh", "-c", mount],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield ["nsenter", "--target", str(holder.pid), "--mount", "--net", "--"]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def kill_9(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    proc.stderr.close()


def test_a_killed_agents_sysctls_are_put_back(star, shared_mounts, zeroserve_bin, tmp_path):
    for name, value in ORIGINAL.items():
        subprocess.run(
            ["ip", "netns", "exec", star.hub, "sysctl", "-qw", f"{name}={value}"], check=True
        )
    assert settings(star.hub) == ORIGINAL
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(DENYING_SITE)
    cookies = tmp_path / "cookies.toml"
    cookies.write_text("syn_cookies = { threshold = 1 }\n")
    on: list[str] = ["--appliance-config", str(cookies)]

    def start(extra: list[str]) -> subprocess.Popen:
        return start_agent(star.hub, zeroserve_bin, caddyfile, extra, enter=shared_mounts)

    crashed = start(on)
    assert settings(star.hub) == ON
    kill_9(crashed)
    assert settings(star.hub) == ON, "kill -9 leaves the sysctls as the agent set them"

    # The next agent, with the feature on, pins the namespace's own values again...
    crashed = start(on)
    assert settings(star.hub) == ON
    kill_9(crashed)
    assert settings(star.hub) == ON

    # ...so one with the feature off, on the same bpffs, puts them back as it starts.
    with running(star.hub, zeroserve_bin, caddyfile, enter=shared_mounts) as proc:
        assert settings(star.hub) == ORIGINAL
        assert status(star.hub)["interfaces"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log = proc.stderr.read()
    assert "sysctl net.ipv4.tcp_syncookies set back to 0" in log
    assert settings(star.hub) == ORIGINAL
