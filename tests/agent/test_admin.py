"""The admin endpoint and the verbs that use it, against a real `zeroserve run`."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.cli.test_run import get, wait_for
from tests.support import clean_env, free_port, spawn, stop, zeroserve_run_argv

SITE = """{{
\tadmin 127.0.0.1:{admin}
}}

http://:{port} {{
\tbind 127.0.0.1
\trespond "{body}"
}}
"""


@pytest.fixture
def instance(zeroserve_bin, tmp_path):
    """A running `zeroserve run` with its own site and admin ports."""
    ports = {"port": free_port(), "admin": free_port()}
    cfg = tmp_path / "Caddyfile"
    cfg.write_text(SITE.format(body="one", **ports))
    proc = spawn(zeroserve_run_argv(zeroserve_bin, cfg))
    wait_for(f"http://127.0.0.1:{ports['port']}/", proc)
    try:
        yield proc, ports, tmp_path
    finally:
        stop(proc)


def admin(
    ports: dict, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{ports['admin']}{path}",
        data=body or None,
        method=method,
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def site(ports: dict) -> bytes:
    return get(f"http://127.0.0.1:{ports['port']}/")[2]


def test_reload_verb_swaps_config(zeroserve_bin, instance):
    proc, ports, tmp = instance
    new = tmp / "Caddyfile.new"
    new.write_text(SITE.format(body="two", **ports))
    done = subprocess.run(
        [str(zeroserve_bin), "reload", "--config", str(new), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert site(ports) == b"two"


def test_rejected_config_keeps_old_serving(zeroserve_bin, instance):
    proc, ports, tmp = instance
    bad = tmp / "Caddyfile.bad"
    bad.write_text(SITE.format(body="two", **ports).replace("respond", "frobnicate"))
    done = subprocess.run(
        [str(zeroserve_bin), "reload", "--config", str(bad), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "unrecognized directive: frobnicate" in done.stderr
    # A config that adapts but the engine rejects, sent straight to /load.
    status, _, body = admin(
        ports,
        "POST",
        "/load",
        json.dumps(
            {
                "admin": {"listen": f"127.0.0.1:{ports['admin']}"},
                "apps": {
                    "http": {
                        "servers": {
                            "s": {
                                "listen": [f"127.0.0.1:{ports['port']}"],
                                "routes": [{"handle": [{"handler": "nope"}]}],
                            }
                        }
                    }
                },
            }
        ).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 400
    assert json.loads(body)["error"].startswith("loading config: ")
    assert site(ports) == b"one"


def test_load_caddyfile_and_read_config(instance):
    proc, ports, tmp = instance
    status, _, body = admin(
        ports,
        "POST",
        "/load",
        SITE.format(body="three", **ports).encode(),
        {"Content-Type": "text/caddyfile"},
    )
    assert status == 200, body
    assert site(ports) == b"three"
    status, headers, body = admin(ports, "GET", "/config/apps/http/servers/srv0/listen")
    assert status == 200 and headers["Etag"].startswith('"/config/apps/http/servers/srv0/listen ')
    assert json.loads(body) == [f"127.0.0.1:{ports['port']}"]


def test_admin_rejects_foreign_host_and_bad_method(instance):
    proc, ports, tmp = instance
    status, _, body = admin(ports, "GET", "/config/", headers={"Host": "evil.example"})
    assert (status, json.loads(body)) == (403, {"error": "host not allowed: evil.example"})
    status, _, body = admin(ports, "GET", "/load")
    assert (status, json.loads(body)) == (405, {"error": "method not allowed"})
    status, _, body = admin(ports, "POST", "/load", b"x", {"Content-Type": "text/plain"})
    assert (status, json.loads(body)) == (400, {"error": "unrecognized config adapter 'plain'"})


def test_stop_verb_ends_the_process(zeroserve_bin, instance):
    proc, ports, tmp = instance
    done = subprocess.run(
        [str(zeroserve_bin), "stop", "--address", f"127.0.0.1:{ports['admin']}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert proc.wait(timeout=30) == 0


def test_start_returns_once_serving(zeroserve_bin, tmp_path):
    ports = {"port": free_port(), "admin": free_port()}
    cfg = tmp_path / "Caddyfile"
    cfg.write_text(SITE.format(body="bg", **ports))
    # Files, not pipes: the detached server keeps its inherited stdout/stderr open.
    with open(tmp_path / "out", "w+") as out, open(tmp_path / "err", "w+") as err:
        code = subprocess.run(
            [str(zeroserve_bin), "start", "--config", str(cfg), "--workers", "1", "--no-edge"],
            stdout=out,
            stderr=err,
            timeout=90,
            env=clean_env(),
        ).returncode
        out.seek(0), err.seek(0)
        done = subprocess.CompletedProcess([], code, out.read(), err.read())
    try:
        assert done.returncode == 0, done.stderr
        assert "Successfully started zeroserve (pid=" in done.stdout
        assert site(ports) == b"bg"
    finally:
        subprocess.run([str(zeroserve_bin), "stop", "--config", str(cfg)], timeout=60)
    pid = int(done.stdout.split("pid=")[1].split(")")[0])
    assert not Path(f"/proc/{pid}").exists() or _wait_gone(pid)


def _wait_gone(pid: int) -> bool:
    import time

    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return True
        # A zombie (its parent, the start verb, already exited) counts as gone.
        if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
            return True
        time.sleep(0.1)
    return False
