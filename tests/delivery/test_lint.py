"""The delivery files against the real tools: Vagrant, Ansible, ansible-lint, systemd, zeroserve.

Fast checks for `make test`; booting images and fleets is `make test-image` / `make test-fleet`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, clean_env

PLAYBOOKS = REPO / "playbooks"
ROLE = PLAYBOOKS / "roles" / "zeroserve"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make setup` (tools/setup.sh installs it)")
    return path


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        argv, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )


def ansible_env(tmp_path: Path) -> dict[str, str]:
    env = clean_env()
    env["ANSIBLE_CONFIG"] = str(PLAYBOOKS / "ansible.cfg")
    env["ANSIBLE_LOCAL_TEMP"] = str(tmp_path / "ansible-tmp")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def test_vagrantfile_validates(tmp_path):
    env = clean_env()
    # Keep Vagrant's machine state out of the work tree.
    env["VAGRANT_DOTFILE_PATH"] = str(tmp_path / "dotvagrant")
    proc = run([tool("vagrant"), "validate"], REPO, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout


def test_site_syntax(tmp_path):
    proc = run(
        [tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", "site.yml"],
        PLAYBOOKS,
        ansible_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile(tmp_path):
    if shutil.which("ansible-lint") is None:
        pytest.skip("ansible-lint is not installed")
    env = ansible_env(tmp_path)
    env["HOME"] = str(tmp_path)
    proc = run(["ansible-lint", "--nocolor"], PLAYBOOKS, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed with production profile" in proc.stdout + proc.stderr


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def test_every_public_variable_is_documented():
    defaults = load_yaml(ROLE / "defaults" / "main.yml")
    options = load_yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    assert all(name.startswith("zeroserve_") for name in defaults)
    for name, spec in options.items():
        assert spec.get("description"), name
        assert spec.get("type"), name
        assert spec.get("default") == defaults[name], name


def test_internal_variables_are_prefixed():
    for path in (ROLE / "vars").glob("*.yml"):
        for name in load_yaml(path):
            assert name.startswith("_zeroserve_"), f"{path.name}: {name}"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, zeroserve_bin) -> Path:
    """The role's templates rendered by Ansible with the role's defaults."""
    out = tmp_path_factory.mktemp("rendered")
    proc = run(
        [
            tool("ansible-playbook"),
            "-i",
            "localhost,",
            "render.yml",
            "-e",
            f"render_dir={out}",
            "-e",
            "_zeroserve_release_id=0.1.0-000000000000",
            "-e",
            f"_zeroserve_bin={zeroserve_bin}",
        ],
        PLAYBOOKS,
        ansible_env(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_rendered_caddyfile_is_valid(rendered, zeroserve_bin):
    caddyfile = rendered / "Caddyfile"
    proc = run(
        [str(zeroserve_bin), "validate", "--config", str(caddyfile), "--adapter", "caddyfile"],
        rendered,
    )
    assert proc.returncode == 0, proc.stderr
    # One blank line between the operator's Caddyfile and the health site, as `caddy fmt`
    # leaves it: else every load of the file logs that it is not formatted.
    assert "not formatted" not in proc.stderr, proc.stderr
    adapted = run([str(zeroserve_bin), "adapt", "--config", str(caddyfile)], rendered)
    assert '"listen":[":2020"]' in adapted.stdout
    env = clean_env()
    env["ZEROSERVE_HEALTH_STATUS"] = "503"
    drained = run([str(zeroserve_bin), "adapt", "--config", str(caddyfile)], rendered, env)
    assert '"status_code":503' in drained.stdout


def test_rendered_unit_verifies(rendered):
    unit = rendered / "zeroserve.service"
    proc = run([tool("systemd-analyze"), "verify", str(unit)], rendered)
    assert proc.returncode == 0, proc.stderr
    # Unknown keys and bad values are only warnings to systemd; here they are errors.
    assert str(unit) not in proc.stderr, proc.stderr
    text = unit.read_text()
    for line in (
        "Type=notify",
        "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "SystemCallFilter=@system-service bpf",
        "LimitMEMLOCK=infinity",
        "ProtectSystem=strict",
        "ReadWritePaths=/sys/fs/bpf",
        "ReadWritePaths=/proc/sys/net/ipv4/tcp_syncookies /proc/sys/net/ipv4/tcp_timestamps",
    ):
        assert line in text.splitlines(), line
    # systemd 252's ProtectKernelTunables=yes would make the pin directory read-only.
    # ProtectKernelModules=yes would hide the kernel headers bcc compiles against.
    for key in ("ProtectKernelTunables=", "ProtectKernelModules="):
        assert not any(line.startswith(key) for line in text.splitlines()), key
    assert any(line.startswith("ReadOnlyPaths=/sys /proc/sys ") for line in text.splitlines())
    assert "ZEROSERVE_DEPLOY_ID=" in text


IMAGE = REPO / "image"
SCRIPTS = [
    IMAGE / "build.sh",
    IMAGE / "deps.sh",
    IMAGE / "repro.sh",
    IMAGE / "rootfs" / "usr" / "sbin" / "zeroserve-update",
    IMAGE / "rootfs" / "usr" / "libexec" / "zeroserve" / "import-config",
    IMAGE / "rootfs" / "usr" / "libexec" / "zeroserve" / "health-check",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_image_scripts_parse(script):
    proc = run(["bash", "-n", str(script)], REPO)
    assert proc.returncode == 0, proc.stderr


def test_update_refuses_outside_an_ab_boot(tmp_path):
    update = str(IMAGE / "rootfs" / "usr" / "sbin" / "zeroserve-update")
    missing = run(["bash", update, str(tmp_path / "nope.tar")], REPO)
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        f"zeroserve-update: {tmp_path / 'nope.tar'}: cannot read",
    )
    bundle = tmp_path / "update.tar"
    bundle.write_bytes(b"")
    # This machine did not boot from a zs-root-a/b partition. (The default of --tries is
    # filled in by the image build.)
    proc = run(["bash", update, "--tries", "3", str(bundle)], REPO)
    assert proc.returncode == 1
    assert "not booted from an A/B slot" in proc.stderr
    usage = run(["bash", update, "--tries", "0", str(bundle)], REPO)
    assert (usage.returncode, usage.stderr.strip()) == (
        1,
        "zeroserve-update: --tries must be 1..99",
    )
