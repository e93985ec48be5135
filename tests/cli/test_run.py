"""`zeroserve run` and `make run` really serve the example site through the engine."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.support import REPO, clean_env, free_port, spawn, stop, zeroserve_run_argv


def wait_for(url: str, proc: subprocess.Popen, deadline_s: float = 60.0) -> None:
    """Poll until something answers, failing fast if the server died."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"server exited with {proc.returncode}: {err[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing answered at {url}")


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def listener_pids(port: int) -> set[int]:
    out = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True
    ).stdout
    return {int(p.split("=")[1]) for p in out.replace(",", " ").split() if p.startswith("pid=")}


def test_run_serves_example_from_engine(zeroserve_bin, tmp_path):
    port = free_port()
    cfg = tmp_path / "Caddyfile"
    example = (REPO / "examples" / "Caddyfile").read_text()
    # Own ports for the site and the admin endpoint, so parallel servers never collide.
    example = example.replace(":8080", f":{port}").replace(
        "{\n", f"{{\n\tadmin 127.0.0.1:{free_port()}\n", 1
    )
    cfg.write_text(example)
    proc = spawn(zeroserve_run_argv(zeroserve_bin, cfg, workers=2))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/health", proc)
        status, headers, body = get(base + "/")
        assert (status, body) == (200, b"Hello from zeroserve!")
        assert headers.get("X-Served-By") == "zeroserve"
        assert get(base + "/health")[::2] == (200, b"OK")
        # The listening sockets belong to the zeroserve process itself: the engine runs
        # in-process (no proxying to a helper server).
        assert listener_pids(port) == {proc.pid}
    finally:
        stop(proc)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_run_names_the_admin_address_it_cannot_bind(zeroserve_bin, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        admin = f"127.0.0.1:{taken.getsockname()[1]}"
        cfg = tmp_path / "Caddyfile"
        cfg.write_text(f"{{\n\tadmin {admin}\n}}\n:{free_port()} {{\n\trespond hi\n}}\n")
        run = subprocess.run(
            [str(zeroserve_bin), "run", "--config", str(cfg), "--no-edge"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
    assert run.returncode == 1
    assert run.stderr == (
        f"Error: starting: admin endpoint: listen tcp {admin}: bind: address already in use\n"
    )


# `make run` serves on 8080 with the admin endpoint on Caddy's default 2019.
@pytest.mark.skipif(
    bool(listener_pids(8080) or listener_pids(2019)),
    reason="port 8080 or 2019 is taken on this machine",
)
def test_make_run_serves_example_on_8080():
    proc = spawn(["make", "--no-print-directory", "-C", str(REPO), "run"])
    try:
        wait_for("http://127.0.0.1:8080/health", proc, deadline_s=300)
        assert get("http://127.0.0.1:8080/")[::2] == (200, b"Hello from zeroserve!")
    finally:
        stop(proc)
