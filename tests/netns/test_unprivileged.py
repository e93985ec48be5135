"""The agent as the appliance's unit runs it: an unprivileged user holding only the
capabilities systemd grants it, over a bpffs that outlives the agent, so a restart
finds the maps the last run pinned (its own, 0600) and reopens them without
CAP_SYS_ADMIN. Where the kernel refuses the edge layers at start, the engine serves
without them and the log says why.

Each agent is entered with `ip netns exec`, which gives it a mount namespace of its
own; the one bpffs of the test is bound at /sys/fs/bpf in each, as systemd-nspawn
does for the fleet's containers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.conftest import http_get
from tests.netns.test_agent import ADMIN_PORT, DENYING_SITE, start_agent, status
from zeroserve.datapath import attach, libbpf
from zeroserve.datapath.capabilities import CAP_SYS_ADMIN
from zeroserve.datapath.pins import LAYOUT_VERSION

pytestmark = pytest.mark.netns

SERVICE_UID = 64_123  # no account: setpriv takes ids, and nothing here resolves names
# The unit's capabilities (playbooks/roles/zeroserve/defaults/main.yml).
UNIT_CAPS = ("bpf", "perfmon", "net_admin", "net_bind_service")


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A directory the service's user may read (pytest's tmp_path is root's alone),
    holding the Caddyfile, the user's home and the mount point of a bpffs, prepared as
    the unit's ExecStartPre leaves it: traversable, with a pin root the user owns."""
    path = Path(tempfile.mkdtemp(prefix="zs-unpriv-"))
    bpffs = path / "bpffs"
    mounted = False
    try:
        path.chmod(0o755)
        (path / "Caddyfile").write_text(DENYING_SITE)
        (path / "Caddyfile").chmod(0o644)
        (path / "home").mkdir()
        os.chown(path / "home", SERVICE_UID, SERVICE_UID)
        bpffs.mkdir()
        subprocess.run(["mount", "-t", "bpf", "bpf", str(bpffs)], check=True)
        mounted = True
        bpffs.chmod(0o711)
        (bpffs / "zeroserve").mkdir(mode=0o750)
        os.chown(bpffs / "zeroserve", SERVICE_UID, SERVICE_UID)
        yield path
    finally:
        # The agents have exited (each test waits for them): their programs are off the
        # hooks, so unmounting drops the last references to the pinned maps.
        if mounted:
            subprocess.run(["umount", str(bpffs)], check=True)
        shutil.rmtree(path)


def as_service(ns: str, service_dir: Path, caps: tuple[str, ...], bpffs: bool = True) -> list[str]:
    """The prefix that runs a command in ns as the service's user with caps alone
    (inheritable, ambient and bounding: what AmbientCapabilities= and
    CapabilityBoundingSet= make), with the test's bpffs at /sys/fs/bpf (else the bare
    directory of the sysfs `ip netns exec` mounts)."""
    listed = ",".join(f"+{c}" for c in caps)
    script = 'HOME="$0/home" exec "$@"'
    if bpffs:
        script = f'mount --bind "$0/bpffs" /sys/fs/bpf && {script}'
    setpriv = [
        "setpriv",
        f"--reuid={SERVICE_UID}",
        f"--regid={SERVICE_UID}",
        "--clear-groups",
        f"--inh-caps=-all,{listed}",
        f"--ambient-caps={listed}",
        f"--bounding-set=-all,{listed}",
    ]
    return ["ip", "netns", "exec", ns, "sh", "-c", script, str(service_dir), *setpriv]


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM, as systemd stops the unit; the agent's stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    return err


def effective(pid: int) -> tuple[int, int]:
    """The process's effective uid and capability mask."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Uid"].split()[1]), int(fields["CapEff"].strip(), 16)


def abort_rule(ns: str) -> dict:
    (rule,) = [r for r in status(ns)["rules"] if r["what"].startswith("abort")]
    return rule


def test_restart_over_pins_without_cap_sys_admin(star, zeroserve_bin, service_dir):
    caddyfile = service_dir / "Caddyfile"
    enter = as_service(star.hub, service_dir, UNIT_CAPS)
    client, attacker = star.spokes["client"], star.spokes["attacker"]
    pins = service_dir / "bpffs" / "zeroserve" / f"v{LAYOUT_VERSION}"

    first = start_agent(star.hub, zeroserve_bin, caddyfile, enter=enter)
    try:
        uid, caps = effective(first.pid)
        assert uid == SERVICE_UID and not caps >> CAP_SYS_ADMIN & 1
        edge = status(star.hub)
        assert sorted(edge["interfaces"]) == ["zsh1", "zsh2"]
        assert edge["programs"]["xdp"] and edge["programs"]["sk_lookup"]
        assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "ok"
        assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/", timeout=0.5) is None
        dropped = abort_rule(star.hub)["dropped"]["packets"]
        assert dropped >= 1, "the attacker's SYN was dropped at XDP"
    finally:
        err = stop(first)
    assert "edge layers attached" in err
    assert set(attach.xdp_prog_id(s.hub_index, star.hub) for s in star.spokes.values()) == {0}
    owned = [pins / "sock" / "zs_socks", pins / "xdp" / "zs_rule_stats"]
    assert all(p.exists() and p.stat().st_uid == SERVICE_UID for p in owned)
    assert not os.listdir(pins / "handoff"), "no fresh maps or hand-off pins left"

    second = start_agent(star.hub, zeroserve_bin, caddyfile, enter=enter)
    try:
        edge = status(star.hub)
        assert sorted(edge["interfaces"]) == ["zsh1", "zsh2"]
        assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "ok"
        # The counters of the first run: its pinned maps, reopened, not made anew.
        assert abort_rule(star.hub)["dropped"]["packets"] >= dropped
        assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/", timeout=0.5) is None
        assert abort_rule(star.hub)["dropped"]["packets"] > dropped
    finally:
        err = stop(second)
    assert "edge layers attached" in err
    assert "edge layers disabled" not in err and "Traceback" not in err


PERFMON_REFUSED = (
    "{caddyfile}:7: abort @ remote_ip 198.18.2.0/24: the XDP program needs CAP_PERFMON"
    " (the verifier refuses packet parsing without it); effective capabilities:"
    " CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_BPF"
)
NET_ADMIN_MISSING = (
    "the XDP, TC and sk_lookup programs need CAP_NET_ADMIN (XDP and TC programs, their hooks"
    " and the socket map); effective capabilities: CAP_NET_BIND_SERVICE, CAP_PERFMON, CAP_BPF"
)


@pytest.mark.parametrize(
    ("dropped", "reason"),
    [
        # The verifier refuses the XDP program's packet parsing (pointer arithmetic with
        # a variable offset) without CAP_PERFMON: the kernel's refusal, at start, which
        # names no capability ("Permission denied"); the warning does.
        ("perfmon", PERFMON_REFUSED),
        # Nothing is loaded without CAP_NET_ADMIN: the agent knows before it tries.
        ("net_admin", NET_ADMIN_MISSING),
    ],
)
def test_edge_layers_refused_at_start_leave_the_engine_serving(
    star, zeroserve_bin, service_dir, dropped, reason
):
    caps = tuple(c for c in UNIT_CAPS if c != dropped)
    assert_serves_without_edge(star, zeroserve_bin, service_dir, caps, True, reason)


RATE_LIMITED_SITE = f"""\
{{
\tadmin 127.0.0.1:{ADMIN_PORT}
\torder rate_limit before respond
}}

:8080 {{
\trate_limit {{
\t\tzone per_host {{
\t\t\tkey {{remote_host}}
\t\t\tevents 10
\t\t\twindow 1s
\t\t}}
\t}}
\trespond "ok"
}}
"""


def test_refused_edge_with_a_rule_only_it_runs_is_a_clear_error(star, zeroserve_bin, service_dir):
    # rate_limit has no engine module: with the edge refused the config cannot be served
    # whole, so the agent stops (as caddy does without the plugin), saying both why.
    (service_dir / "Caddyfile").write_text(RATE_LIMITED_SITE)
    caps = tuple(c for c in UNIT_CAPS if c != "perfmon")
    cmd = [*as_service(star.hub, service_dir, caps), str(zeroserve_bin), "run"]
    cmd += ["-c", str(service_dir / "Caddyfile"), "--workers", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    (warning,) = [json.loads(line) for line in lines if "edge layers disabled" in line]
    assert "the XDP program needs CAP_PERFMON" in warning["reason"]
    assert lines[-1].startswith("Error: loading config: ")
    assert lines[-1].endswith("unknown module: http.handlers.rate_limit")
    assert "Traceback" not in done.stderr


def test_no_bpffs_and_no_cap_sys_admin_to_mount_one(star, zeroserve_bin, service_dir):
    reason = (
        "bpffs is not mounted at /sys/fs/bpf, and mounting it failed: Operation not permitted"
        " (mounting takes CAP_SYS_ADMIN: mount it before the agent starts)"
    )
    assert_serves_without_edge(star, zeroserve_bin, service_dir, UNIT_CAPS, False, reason)


def test_busy_xdp_hook_is_one_clear_warning(star, zeroserve_bin, service_dir):
    # Another tool's XDP program on the client's link: the agent never clobbers it, and
    # the kernel's reason (netlink extack) comes in the warning, not on a libbpf line.
    index = star.spokes["client"].hub_index
    prog = libbpf.xdp_pass_program()
    try:
        attach.attach_xdp(index, prog, ns=star.hub)
        reason = (
            "{caddyfile}:7: abort @ remote_ip 198.18.2.0/24: edge layers: XDP native attach"
            f" on ifindex {index}: Device or resource busy (XDP program already attached)"
        )
        assert_serves_without_edge(star, zeroserve_bin, service_dir, UNIT_CAPS, True, reason)
        assert attach.xdp_prog_id(index, star.hub) == libbpf.prog_info(prog).id
    finally:
        attach.detach_xdp(index, ns=star.hub)
        os.close(prog)


def assert_serves_without_edge(
    star, zeroserve_bin, service_dir: Path, caps: tuple[str, ...], bpffs: bool, reason: str
) -> None:
    """The agent, started as the service with caps, serves every rule in the engine and
    its one warning gives reason (`{caddyfile}` standing for the Caddyfile's path)."""
    cmd = [*as_service(star.hub, service_dir, caps, bpffs), str(zeroserve_bin), "run"]
    cmd += ["-c", str(service_dir / "Caddyfile"), "--workers", "1"]
    client, attacker = star.spokes["client"], star.spokes["attacker"]
    # The sites answer before the edge is committed, and a busy hook refuses it only then:
    # systemd's readiness message is what says the start is over.
    notify_path = service_dir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify_path.chmod(0o777)
        notify.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        try:
            try:
                assert notify.recv(256) == b"READY=1"
            except TimeoutError:
                raise AssertionError("no READY=1 within 60 s") from None
            assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "ok"
            assert status(star.hub) == {"enabled": False}
            # The engine runs the rule the edge would have.
            assert http_get(attacker.ns, f"http://{attacker.hub_addr}:8080/") is None
        finally:
            err = stop(proc)
    (warning,) = [json.loads(line) for line in err.splitlines() if "edge layers disabled" in line]
    assert warning["msg"] == "edge layers disabled; serving without them"
    assert warning["reason"] == reason.format(caddyfile=service_dir / "Caddyfile")
    assert "Traceback" not in err and "edge layers attached" not in err
    assert "libbpf" not in err


def test_killed_agent_is_cleaned_up_without_cap_sys_admin(star, zeroserve_bin, service_dir):
    # The next agent cannot ask the kernel the name of the program on an interface (that
    # takes CAP_SYS_ADMIN): it knows the dead agent's by the pin it left.
    caddyfile = service_dir / "Caddyfile"
    enter = as_service(star.hub, service_dir, UNIT_CAPS)
    crashed = start_agent(star.hub, zeroserve_bin, caddyfile, enter=enter)
    crashed.kill()
    crashed.wait()
    crashed.stderr.close()
    left = {attach.xdp_prog_id(s.hub_index, star.hub) for s in star.spokes.values()}
    assert len(left) == 1 and 0 not in left, "kill -9 leaves the program attached"

    proc = start_agent(star.hub, zeroserve_bin, caddyfile, enter=enter)
    try:
        running = {attach.xdp_prog_id(s.hub_index, star.hub) for s in star.spokes.values()}
        assert running == {status(star.hub)["programs"]["xdp"]} and not running & left
        client = star.spokes["client"]
        assert http_get(client.ns, f"http://{client.hub_addr}:8080/") == "ok"
    finally:
        err = stop(proc)
    assert "removed edge program left by a stopped agent" in err
    assert "edge layers disabled" not in err
    assert {attach.xdp_prog_id(s.hub_index, star.hub) for s in star.spokes.values()} == {0}
