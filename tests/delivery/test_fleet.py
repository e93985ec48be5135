"""`make test-fleet`: playbooks/site.yml against three edges booted from the appliance's root.

Needs `make image` first (the update bundle's root squashfs and the wheel it was built from).
Checks: a first deploy, a second run that changes nothing, a rolling update (a Caddyfile
reload and a restart) under a load-balanced client with no failed request, and a host whose
new config fails the health gate: it is rolled back and the rollout stops before the next batch.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.delivery.appliance import OUT
from tests.delivery.fleet import Balancer, Edge, get, unpack_root
from tests.support import REPO, clean_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

NAMES = ["edge1", "edge2", "edge3"]


@pytest.fixture(scope="module")
def wheel() -> str:
    wheels = sorted((OUT / "work" / "wheel").glob("zeroserve-*.whl"))
    if not wheels or not (OUT / "zeroserve-appliance.update.tar").exists():
        pytest.fail("image/out is incomplete: run `make image` first")
    return str(wheels[-1])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, wheel):
    work = tmp_path_factory.mktemp("fleet")
    root = unpack_root(work / "root")
    edges = []
    try:
        for index, name in enumerate(NAMES):
            (work / name).mkdir()
            edge = Edge(name, index, work / name)
            edges.append(edge)
            edge.start(root)
        for edge in edges:
            edge.wait_booted()
        yield edges
    finally:
        for edge in edges:
            edge.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def caddyfile(release: str) -> str:
    # Ansible templates this per host. The deny rule (a documentation network, never a
    # client here) puts an XDP program in front of the site, beside sk_lookup.
    return (
        ":80 {\n\t@denied remote_ip 203.0.113.0/24\n\tabort @denied\n"
        '\trespond "{{ inventory_hostname }} ' + release + '"\n}\n'
    )


def assert_edge_layers_run(edge: Edge) -> None:
    """The unit's current run (not an earlier one: the first is the image's own unit)
    attached its edge layers and did not fall back to serving without them."""
    invocation = edge.exec("systemctl", "show", "-P", "InvocationID", "zeroserve.service")
    journal = edge.exec(
        "journalctl", "-o", "cat", f"_SYSTEMD_INVOCATION_ID={invocation.stdout.strip()}"
    )
    assert "edge layers attached" in journal.stdout, journal.stdout[-2000:]
    assert "edge layers disabled" not in journal.stdout, journal.stdout[-2000:]
    live = "/opt/zeroserve/releases/$(cat /opt/zeroserve/deploy/release)/bin/zeroserve"
    status = edge.exec("sh", "-c", f"{live} status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert any(ln.startswith("edge layers: xdp (") and "sk_lookup" in ln for ln in lines), lines
    assert "interfaces: zs0" in lines, lines


def deploy(fleet, tmp_path, wheel, release: str, host_vars: dict | None = None, **extra):
    hosts = {}
    for edge in fleet:
        hosts[edge.name] = {
            "ansible_connection": "community.docker.nsenter",
            "ansible_nsenter_pid": edge.leader,
            "ansible_become": False,
            "ansible_python_interpreter": "/usr/bin/python3",
            **(host_vars or {}).get(edge.name, {}),
        }
    # The Caddyfile goes in the inventory, so a host's own (host_vars) can override it.
    inventory = {"edges": {"hosts": hosts, "vars": {"zeroserve_caddyfile": caddyfile(release)}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    variables = {
        "zeroserve_wheel": wheel,
        "zeroserve_sysctls": {},
        "zeroserve_drain_seconds": 2,
        **extra,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = clean_env()
    env["ANSIBLE_CONFIG"] = str(REPO / "playbooks" / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "inventory.json"), "-e",
         f"@{tmp_path / 'vars.json'}", "site.yml"],
        cwd=REPO / "playbooks", env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    (tmp_path / f"ansible-{release}.log").write_text(proc.stdout + proc.stderr)
    return proc


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    result = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if m:
            result[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return result


def answers(fleet) -> dict[str, bytes]:
    return {edge.name: get(f"http://{edge.address}/")[1] for edge in fleet}


def test_first_deploy(fleet, tmp_path, wheel):
    proc = deploy(fleet, tmp_path, wheel, "v1")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert answers(fleet) == {e.name: f"{e.name} v1".encode() for e in fleet}
    for edge in fleet:
        assert get(f"http://{edge.address}:2020/healthz") == (200, b"ok")
        unit = edge.exec("systemctl", "show", "-P", "User,ActiveState", "zeroserve.service")
        assert unit.stdout.split() == ["zeroserve", "active"], unit
        assert_edge_layers_run(edge)


def test_second_run_changes_nothing(fleet, tmp_path, wheel):
    proc = deploy(fleet, tmp_path, wheel, "v1")
    assert proc.returncode == 0, proc.stdout[-6000:]
    counts = recap(proc.stdout)
    assert sorted(counts) == NAMES
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), counts


def test_rolling_update_fails_no_request(fleet, tmp_path, wheel):
    balancer = Balancer(fleet)
    balancer.start()
    try:
        # A new Caddyfile (reload) and a new unit environment (restart) on every host.
        proc = deploy(fleet, tmp_path, wheel, "v2", zeroserve_environment={"ROLLOUT": "v2"})
    finally:
        balancer.stop()
    assert proc.returncode == 0, proc.stdout[-6000:]
    print(f"served {dict(balancer.served)}, drained polls {dict(balancer.drained)}")
    assert balancer.failures == []
    for edge in fleet:
        # Each host left the rotation once and served both releases while in it.
        assert balancer.drained[edge.name] > 0, balancer.drained
        assert balancer.bodies[edge.name] == {f"{edge.name} v1".encode(),
                                              f"{edge.name} v2".encode()}  # fmt: skip
    assert answers(fleet) == {e.name: f"{e.name} v2".encode() for e in fleet}
    for edge in fleet:
        # The restart found the last run's pinned maps and reopened them (by path: the
        # unit has no CAP_SYS_ADMIN).
        assert_edge_layers_run(edge)


def test_broken_host_is_rolled_back_and_stops_the_rollout(fleet, tmp_path, wheel):
    # edge2's new config validates but answers 500: its health gate fails.
    broken = {"edge2": {"zeroserve_caddyfile": ':80 {\n\trespond "broken" 500\n}\n'}}
    proc = deploy(
        fleet, tmp_path, wheel, "v3", broken, zeroserve_environment={"ROLLOUT": "v2"},
        zeroserve_health_retries=3,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "edge2 failed its deploy" in proc.stdout
    # Batch 1 (edge1) is updated, batch 2 (edge2) rolled back, batch 3 (edge3) never started.
    assert answers(fleet) == {"edge1": b"edge1 v3", "edge2": b"edge2 v2", "edge3": b"edge3 v2"}
    assert "edge3" not in recap(proc.stdout)
    assert get(f"http://{fleet[1].address}:2020/healthz") == (200, b"ok")
