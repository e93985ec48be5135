"""Namespaces for end-to-end edge tests: a hub (the appliance) with a client and an
attacker, each on its own veth pair in 198.18.0.0/15, torn down whatever happens;
plain Python servers and clients run inside them with `ip netns exec`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.datapath.conftest import _root_only, layout, module_layout  # noqa: F401
from zeroserve.datapath import attach

SERVER = """
import http.server, sys, threading
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"port {self.server.server_address[1]}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
servers = [http.server.ThreadingHTTPServer(("0.0.0.0", int(p)), Ok) for p in sys.argv[1:]]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""

CLIENT = """
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])) as r:
        sys.stdout.write(r.read().decode())
except OSError as err:
    sys.stdout.write(f"failed: {err}")
    sys.exit(1)
"""


def _namespaces() -> set[str]:
    return set(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else set()


@pytest.fixture
def star() -> Iterator[attach.Star]:
    with attach.scratch_star(["client", "attacker"], prefix="zs-nt") as topology:
        yield topology
    # Only ours: other suites may be making namespaces of their own meanwhile.
    ours = {topology.hub} | {s.ns for s in topology.spokes.values()}
    assert not ours & _namespaces(), "scratch namespaces must be removed"


@contextmanager
def http_server(ns: str, *ports: int) -> Iterator[None]:
    """A plain Python HTTP server on every address of ns, answering "port N"."""
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, *map(str, ports)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


def http_get(ns: str, url: str, timeout: float = 1.0) -> str | None:
    """The body of GET url from inside ns, or None if no answer came."""
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, url, str(timeout)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    return proc.stdout if proc.returncode == 0 else None
