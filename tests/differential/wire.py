"""Raw HTTP/1.1 over a socket: the same request bytes to each server, responses parsed back.

A deliberately small, lenient response reader: it must describe whatever a server sends
(including nothing, a reset or a stall) rather than judge it, so the comparison sees
everything.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

PAUSE_S = 0.3


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # in wire order; chunked trailers follow as "trailer:name"
    body: bytes
    interim: list[int] = field(default_factory=list)  # 1xx statuses that came first


@dataclass
class Exchange:
    """What one section's connection produced."""

    responses: list[Response]
    # None when every expected response arrived; else how reading ended:
    # "closed" (EOF or reset), "timeout" or "unparseable: ...".
    end: str | None


class _Ended(Exception):
    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise _Ended("timeout") from None
        except (ConnectionResetError, BrokenPipeError):
            raise _Ended("closed") from None
        if not chunk:
            raise _Ended("closed")
        self.buf += chunk

    def until(self, delim: bytes) -> bytes:
        while (i := self.buf.find(delim)) < 0:
            self.fill()
        out, self.buf = self.buf[:i], self.buf[i + len(delim) :]
        return out

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        try:
            while True:
                self.fill()
        except _Ended as e:
            if e.how == "timeout":
                raise
        out, self.buf = self.buf, b""
        return out


def _head(reader: _Reader) -> tuple[int, str, list[tuple[str, str]]]:
    # Not HTTP/1 at all (an HTTP/2 SETTINGS frame, say): say so now rather than wait for a
    # blank line that never comes.
    while len(reader.buf) < 5 and b"HTTP/".startswith(reader.buf):
        reader.fill()
    if not reader.buf.startswith(b"HTTP/"):
        raise _Ended(f"unparseable: starts with {reader.buf[:24]!r}")
    head = reader.until(b"\r\n\r\n").decode("latin-1")
    status_line, *lines = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _Ended(f"unparseable: status line {status_line[:80]!r}")
    headers = []
    for ln in lines:
        name, sep, value = ln.partition(":")
        if not sep:
            raise _Ended(f"unparseable: header line {ln[:80]!r}")
        headers.append((name, value.strip(" \t")))
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers


def _chunked(reader: _Reader, headers: list[tuple[str, str]]) -> bytes:
    body = b""
    while True:
        size_line = reader.until(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Ended(f"unparseable: chunk size {size_line[:40]!r}") from None
        if size == 0:
            break
        body += reader.exactly(size)
        reader.until(b"\r\n")
    while line := reader.until(b"\r\n").decode("latin-1"):
        name, _, value = line.partition(":")
        headers.append(("trailer:" + name, value.strip()))
    return body


def _one_response(reader: _Reader, method: str) -> Response:
    interim: list[int] = []
    while True:
        status, reason, headers = _head(reader)
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            continue
        break
    fields = {k.lower(): v for k, v in headers}
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in fields.get("transfer-encoding", "").lower():
        body = _chunked(reader, headers)
    elif fields.get("content-length", "").isdigit():
        body = reader.exactly(int(fields["content-length"]))
    else:
        body = reader.rest()
    return Response(status, reason, headers, body, interim)


def exchange(
    port: int, parts: tuple[bytes, ...], methods: tuple[str, ...], timeout: float
) -> Exchange:
    """Send `parts` to 127.0.0.1:port on a fresh connection and read len(methods) responses."""
    responses: list[Response] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        try:
            sock.connect(("127.0.0.1", port))
        except OSError as exc:  # the server died during the case
            return Exchange([], f"connect failed: {exc.strerror}")
        reader = _Reader(sock)
        try:
            for i, part in enumerate(parts):
                if i:
                    time.sleep(PAUSE_S)
                try:
                    sock.sendall(part)
                except (BrokenPipeError, ConnectionResetError):
                    break  # the server gave up on us early; read what it said
            for method in methods:
                responses.append(_one_response(reader, method))
        except _Ended as e:
            return Exchange(responses, e.how)
    return Exchange(responses, None)
