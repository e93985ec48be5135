"""`zeroserve run` tells systemd it is ready only once it serves (Type=notify in the units)."""

from __future__ import annotations

import socket
import subprocess
import urllib.request

from tests.support import clean_env, free_port
from zeroserve.agent.sdnotify import notify


def test_notify_without_a_service_manager(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_notify_abstract_socket(monkeypatch):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(f"\0zeroserve-test-{free_port()}")
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + sock.getsockname()[1:].decode())
        assert notify("STATUS=testing") is True
        assert sock.recv(256) == b"STATUS=testing"


def test_run_notifies_ready_when_serving(tmp_path, zeroserve_bin):
    port = free_port()
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(f'{{\n\tadmin off\n}}\n\n:{port} {{\n\trespond "up"\n}}\n')
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify_path))
        sock.settimeout(60)
        env = clean_env()
        env["NOTIFY_SOCKET"] = str(notify_path)
        proc = subprocess.Popen(
            # Without edge layers: the host's interfaces (and who else holds them) are not
            # this test's business; tests/netns covers readiness with the layers on.
            [str(zeroserve_bin), "run", "--config", str(caddyfile), "--workers", "1", "--no-edge"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            try:
                ready = sock.recv(256)
            except TimeoutError:
                proc.terminate()
                raise AssertionError(proc.communicate(timeout=30)[1].decode()[-2000:]) from None
            assert ready == b"READY=1"
            # Ready means serving: the first request after the message is answered.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
                assert resp.read() == b"up"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
