"""reverse_proxy under many connections and across reloads: 10,000 concurrent client
connections through the upstream pool leave no file descriptor behind, and a WebSocket
through the proxy keeps echoing across 10 reloads."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.engine.conftest import server_config, with_listen
from tests.engine.test_reverse_proxy import read_head
from tests.engine.wire import serve_each

CLIENTS = 10_000

# Opens CLIENTS connections to the proxy, one GET on each as it opens (all stay open), says
# "held" with every answer read, then closes them all when told to.
CLIENT = r"""
import resource, socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held, ok = [], 0
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\nup"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    ok += data.startswith(b"HTTP/1.1 200 ")
    held.append(s)
print("held", ok, flush=True)
sys.stdin.readline()
for s in held:
    s.close()
print("closed", flush=True)
"""


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def many_files() -> Iterator[None]:
    """This process (the engine's) may hold the clients' 10,000 accepted sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < CLIENTS + 2_000:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {CLIENTS + 2_000}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def proxy_to(dial: str) -> dict:
    return server_config(
        [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}]}]
    )


def test_ten_thousand_client_connections_leak_no_fds(servers, many_files) -> None:
    workers = 2
    _, up_port = servers.engine(
        server_config([{"handle": [{"handler": "static_response", "body": "up"}]}]), workers
    )
    _, port = servers.engine(proxy_to(f"127.0.0.1:{up_port}"), workers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    time.sleep(0.2)
    baseline = fd_count()
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(CLIENTS), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None and client.stdin is not None
        assert client.stdout.readline().split() == ["held", str(CLIENTS)]
        peak = fd_count()
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "closed"
        assert client.wait(30) == 0
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert peak >= baseline + CLIENTS, "the 10,000 connections were open at once"
    # What may stay: idle pooled upstream connections (32 per worker, Caddy's default) and
    # the upstream engine's ends of them.
    bound = baseline + 2 * 32 * workers
    deadline = time.monotonic() + 15
    while fd_count() > bound and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fd_count() <= bound, (baseline, peak, fd_count())


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_echo_upstream() -> tuple[socket.socket, str]:
    """A WebSocket server that answers each text frame with the same text, unmasked."""
    listener = socket.create_server(("127.0.0.1", 0))

    def session(c: socket.socket) -> None:
        with c:
            buf = bytearray()
            head = read_head(c, buf)
            if head is None:
                return
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            c.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            while True:
                while len(buf) < 6 or len(buf) < 6 + (buf[1] & 0x7F):
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                n = buf[1] & 0x7F
                mask, payload = buf[2:6], buf[6 : 6 + n]
                text = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                del buf[: 6 + n]
                c.sendall(bytes([0x81, len(text)]) + text)

    serve_each(listener, session)
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def ws_roundtrip(s: socket.socket, text: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    s.sendall(bytes([0x81, 0x80 | len(text)]) + mask + masked)
    frame = b""
    while len(frame) < 2 or len(frame) < 2 + frame[1]:
        data = s.recv(4096)
        assert data, "the tunnel closed"
        frame += data
    assert frame[0] == 0x81
    return frame[2 : 2 + frame[1]]


def test_websocket_stays_open_across_ten_reloads(servers) -> None:
    listener, dial = ws_echo_upstream()
    try:
        config = proxy_to(dial)
        engine, port = servers.engine(config)
        key = base64.b64encode(os.urandom(16))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(
                b"GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            buf = bytearray()
            head = read_head(s, buf)
            assert head is not None and head.startswith(b"HTTP/1.1 101 ")
            expected = base64.b64encode(hashlib.sha1(key + GUID).digest())
            assert b"Sec-WebSocket-Accept: " + expected in head
            assert not buf
            assert ws_roundtrip(s, b"before") == b"before"
            for i in range(10):
                # Each reload is a different config (a new route), as a deploy would be.
                reloaded = proxy_to(dial)
                reloaded["apps"]["http"]["servers"]["srv0"]["routes"].insert(
                    0,
                    {
                        "match": [{"path": [f"/reload-{i}"]}],
                        "handle": [{"handler": "static_response", "body": str(i)}],
                    },
                )
                engine.reload(json.dumps(with_listen(reloaded, port)))
                text = f"after reload {i}".encode()
                assert ws_roundtrip(s, text) == text
                with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh:
                    fresh.sendall(f"GET /reload-{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                    assert fresh.recv(4096).endswith(f"\r\n\r\n{i}".encode()), "reloaded"
    finally:
        listener.close()
