"""The `servers` timeouts and limits against the reference Caddy: both serve one config with
timeouts of a second or two; a raw socket sends a request in timed pieces and records the
bytes received and when the connection ended. Bytes must match (dates masked), the ending
too, and the moment it ended within 0.1 s of Caddy's."""

from __future__ import annotations

import ctypes
import os
import select
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from tests.engine.conftest import server_config
from tests.engine.wire import DATE

# The engine's clock wakes for each deadline (a tick late, before, made a 250 ms slack pass);
# what is left is scheduling noise on a shared machine.
SLACK = 0.1

HI = [{"handle": [{"handler": "static_response", "body": "hi"}]}]
ECHO = [{"handle": [{"handler": "static_response", "body": "b=[{http.request.body}]"}]}]

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
POST10 = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"


@dataclass(frozen=True)
class Trace:
    data: bytes
    #: "closed", "reset", or "open" when the client gave up
    end: str
    #: seconds from connect to the end (None when still open)
    at: float | None


def trace(port: int, steps: list[tuple[float, bytes]], limit: float) -> Trace:
    """Send each piece at its time (seconds after connecting; empty bytes: half-close) while
    reading whatever comes, until the peer ends the connection or `limit` passes."""
    t0 = time.monotonic()
    out = bytearray()
    pending = list(steps)
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        s.setblocking(False)
        while True:
            now = time.monotonic() - t0
            while pending and pending[0][0] <= now:
                _, piece = pending.pop(0)
                try:
                    if piece:
                        s.sendall(piece)
                    else:
                        s.shutdown(socket.SHUT_WR)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pending.clear()
            if now >= limit:
                return Trace(DATE.sub(b"\r\nDate: <date>", bytes(out)), "open", None)
            wake = min(pending[0][0], limit) if pending else limit
            readable, _, _ = select.select([s], [], [], max(0.0, wake - now))
            if not readable:
                continue
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                end = "reset"
            else:
                if chunk:
                    out += chunk
                    continue
                end = "closed"
            at = round(time.monotonic() - t0, 2)
            return Trace(DATE.sub(b"\r\nDate: <date>", bytes(out)), end, at)


def both(servers, config: dict, steps: list[tuple[float, bytes]], limit: float = 3.0):
    """Caddy's trace and the engine's, taken at the same time: (caddy, engine)."""
    ports = [servers.caddy(config), servers.engine(config)[1]]
    got: list[Trace | None] = [None, None]

    def run(k: int) -> None:
        got[k] = trace(ports[k], steps, limit)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0] is not None and got[1] is not None
    return got[0], got[1]


def assert_same(caddy: Trace, engine: Trace) -> None:
    assert (engine.data, engine.end) == (caddy.data, caddy.end)
    if caddy.at is not None and engine.at is not None:
        assert abs(engine.at - caddy.at) <= SLACK, (engine.at, caddy.at)


CASES = {
    # Skipping an unread body after the handler hits read_timeout (counted from the end of
    # the head): the answer goes out with Connection: close, then the connection closes.
    "read_timeout_unread_body": (HI, {"read_timeout": "1s"}, [(0, POST10 + b"abc")]),
    "read_timeout_counts_from_head_end": (
        HI,
        {"read_timeout": "1s"},
        [(0, b"POST / HTTP/1.1\r\n"), (0.7, b"Host: t\r\nContent-Length: 10\r\n\r\nabc")],
    ),
    "read_timeout_body_too_late": (
        HI,
        {"read_timeout": "1s"},
        [(0, POST10 + b"abc"), (1.5, b"defghij")],
    ),
    "read_timeout_body_in_time": (
        HI,
        {"read_timeout": "1s"},
        [(0, POST10 + b"abc"), (0.5, b"defghij"), (0.8, GET)],
    ),
    # A handler reading the body gets what came before the deadline; the rest is then skipped
    # with no deadline, and the connection stays usable.
    "read_timeout_handler_reads_body": (
        ECHO,
        {"read_timeout": "1s"},
        [(0, POST10 + b"abc"), (1.8, b"defghij"), (2.1, GET)],
    ),
    "read_timeout_handler_body_then_eof": (
        ECHO,
        {"read_timeout": "1s"},
        [(0, POST10 + b"abc"), (1.5, b"")],
    ),
    "read_timeout_chunked_handler": (
        ECHO,
        {"read_timeout": "1s"},
        [
            (0, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
            (1.6, b"2\r\nde\r\n0\r\n\r\n"),
            (1.9, GET),
        ],
    ),
    "eof_in_unread_body": (HI, {}, [(0, POST10 + b"abc"), (0.5, b"")]),
    # read_timeout does not bound the head: Caddy's 1-minute read_header_timeout does.
    "read_timeout_not_for_head": (HI, {"read_timeout": "1s"}, [(0, b"GET / HTTP/1.1\r\n")]),
    "read_header_timeout_silent": (
        HI,
        {"read_timeout": "3s", "read_header_timeout": "1s"},
        [(0, b"GET / HTTP/1.1\r\n")],
    ),
    "read_header_timeout_after_idle": (
        HI,
        {"read_header_timeout": "1s", "idle_timeout": "5s"},
        [(0, GET), (1.2, b"GET / HTTP/1.1\r\n")],
    ),
    "idle_until_four_bytes": (
        HI,
        {"read_header_timeout": "1s", "idle_timeout": "2s"},
        [(0, GET), (0.2, b"GE")],
    ),
    "idle_timeout_not_read_timeout": (
        HI,
        {"read_timeout": "1s", "idle_timeout": "2s"},
        [(0, GET)],
    ),
    # write_timeout runs from the end of the head: a body arriving after it leaves the answer
    # unwritable, and the connection closes without one.
    "write_timeout_keepalive": (HI, {"write_timeout": "1s"}, [(0, GET), (1.4, GET)]),
    "write_timeout_slow_body": (
        HI,
        {"write_timeout": "1s"},
        [(0, POST10 + b"abc"), (1.5, b"defghij")],
    ),
    "write_timeout_slow_body_read": (
        ECHO,
        {"write_timeout": "1s"},
        [(0, POST10 + b"abc"), (1.5, b"defghij")],
    ),
    "write_timeout_after_continue": (
        ECHO,
        {"write_timeout": "1s"},
        [
            (0, b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
            (1.5, b"abc"),
        ],
    ),
    # Past Go's 256 KiB discard limit the answer says Connection: close; the FIN follows at
    # once unless at most that much more is declared, which is read first.
    "body_over_limit_rest_small": (
        HI,
        {},
        [(0, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n" + b"a" * 262145)],
    ),
    "body_over_limit_rest_arrives": (
        HI,
        {},
        [
            (0, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n" + b"a" * 262145),
            (0.6, b"b" * 37855 + GET),
        ],
    ),
    "body_over_limit_rest_large": (
        HI,
        {},
        [(0, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 262145)],
    ),
    "body_over_limit_chunked": (
        HI,
        {},
        [
            (
                0,
                b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n40001\r\n"
                + b"a" * 0x40001
                + b"\r\n",
            ),
            (0.6, b"0\r\n\r\n"),
        ],
    ),
    "long_method": (
        HI,
        {},
        [(0, b"ABCDEFGHIJABCDEFGHIJABCDEFGHIJABC / HTTP/1.1\r\nHost: t\r\n\r\n" + GET)],
    ),
    "max_header_bytes_under": (
        HI,
        {"max_header_bytes": 1000},
        [(0, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 3000 + b"\r\n\r\n")],
    ),
    "max_header_bytes_over": (
        HI,
        {"max_header_bytes": 1000},
        [(0, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 9000 + b"\r\n\r\n")],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_timeouts_like_caddy(servers, name):
    routes, options, steps = CASES[name]
    caddy, engine = both(servers, server_config(routes, **options), steps)
    assert_same(caddy, engine)


def test_write_timeout_cuts_a_slow_reader(servers, tmp_path):
    """A client that stops reading a large file is cut off at write_timeout: both servers end
    the connection before the whole body went out."""
    size = 256 << 20
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(size)
    routes = [{"handle": [{"handler": "file_server", "root": str(tmp_path)}]}]
    config = server_config(routes, write_timeout="1s")
    for port in (servers.caddy(config), servers.engine(config)[1]):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(2.0)
            got, ended = 0, "open"
            while True:
                try:
                    chunk = s.recv(1 << 20)
                except ConnectionResetError:
                    ended = "reset"
                    break
                if not chunk:
                    ended = "closed"
                    break
                got += len(chunk)
            assert ended in ("closed", "reset"), port
            assert 0 < got < size, (port, got)


_libc = ctypes.CDLL(None, use_errno=True)
_SYS_PIDFD_GETFD = 438


def _server_keepalive(pid: int, client: socket.socket) -> tuple[int, int, int, int]:
    """SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT of the server's end of
    `client`'s connection, read from a duplicate of that server process's socket."""
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            fd = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                continue
            try:
                s = socket.socket(fileno=fd)
            except OSError:
                os.close(fd)
                continue
            with s:
                try:
                    if s.type != socket.SOCK_STREAM or s.getpeername() != client.getsockname():
                        continue
                except OSError:
                    continue
                return (
                    s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                )
    finally:
        os.close(pidfd)
    raise AssertionError(f"no socket of process {pid} is connected to the client")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"keepalive_interval": "7s"},
        {"keepalive_idle": "3s", "keepalive_count": 4},
        {"keepalive_idle": "-1s", "keepalive_interval": "-1s"},
    ],
    ids=["default", "interval", "idle_count", "negative"],
)
def test_keepalive_like_caddy(servers, options):
    config = server_config(HI, **options)
    caddy_port = servers.caddy(config)
    caddy_pid = servers.procs[-1].pid
    engine_port = servers.engine(config)[1]
    seen = []
    for pid, port in ((caddy_pid, caddy_port), (os.getpid(), engine_port)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(GET)
            assert c.recv(4096).endswith(b"hi")
            seen.append(_server_keepalive(pid, c))
    assert seen[1] == seen[0]
