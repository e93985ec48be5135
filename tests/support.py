"""Plain helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


class QuietHandler(BaseHTTPRequestHandler):
    """A test upstream's request handler: no access log on stderr, and `reply` for the
    usual answer with a Content-Length."""

    def reply(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        """Silent: the test output is the place for results, not access logs."""


def free_port() -> int:
    """A loopback port nothing is bound to right now, picked below the kernel's ephemeral
    range: a port from that range can become some client connection's own port (wrk's,
    a test's) between this check and the server's bind, which then fails."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", random.randrange(10000, low)))
            except OSError:
                continue
            return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The environment for child processes, without the test runner's Python path tweaks."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def zeroserve_run_argv(zeroserve_bin: Path, config: Path, workers: int = 1) -> list[str]:
    """`zeroserve run` on the host without edge layers: the host's interfaces (and who else
    holds them) are no test's business here; tests/netns covers the layers."""
    return [
        str(zeroserve_bin),
        "run",
        "--config",
        str(config),
        "--workers",
        str(workers),
        "--no-edge",
    ]


def spawn(argv: list[str]) -> subprocess.Popen:
    """A server in a session of its own, so `stop` also reaches what it started."""
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=clean_env(),
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
