"""Raw-socket HTTP exchanges for engine tests: bytes in, bytes out, plus how the peer ended."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DATE = re.compile(rb"\r\nDate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


# the Host header of every request in the comparison tables
H = b"Host: t\r\n"


@dataclass(frozen=True)
class Exchange:
    data: bytes
    #: "closed" (FIN), "reset" (RST) or "open" (still open when the client gave up)
    end: str

    def normalized(self) -> tuple[bytes, str]:
        """Dates vary by the second; everything else must match byte for byte."""
        return DATE.sub(b"\r\nDate: <date>", self.data), self.end


def exchange(
    port: int, payload: bytes | list[bytes], quiet: float = 0.25, limit: float = 5.0
) -> Exchange:
    """Send `payload` (several pieces are sent with pauses in between), then read until the
    peer closes or nothing arrives for `quiet` seconds."""
    pieces = payload if isinstance(payload, list) else [payload]
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(0.05)
            s.sendall(piece)
        s.settimeout(quiet)
        out = bytearray()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return Exchange(bytes(out), "open")
            except ConnectionResetError:
                return Exchange(bytes(out), "reset")
            if not chunk:
                return Exchange(bytes(out), "closed")
            out += chunk
        return Exchange(bytes(out), "open")


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """Poll until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def both_exchanges(
    ports: tuple[int, int], payload: bytes | list[bytes]
) -> tuple[tuple[bytes, str], tuple[bytes, str]]:
    """`payload`'s normalized exchange with the engine and with Caddy: (got, want)."""
    caddy_port, engine_port = ports
    want = exchange(caddy_port, payload).normalized()
    return exchange(engine_port, payload).normalized(), want


def serve_each(
    listener: socket.socket, handle: Callable[[socket.socket], None], threaded: bool = True
) -> None:
    """Hand every connection the listener accepts to handle (each on a thread of its own, or
    one after another), from a daemon thread that ends when the listener is closed."""

    def accept_loop() -> None:
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            if threaded:
                threading.Thread(target=handle, args=(c,), daemon=True).start()
            else:
                handle(c)

    threading.Thread(target=accept_loop, daemon=True).start()
