"""reverse_proxy in the engine, against a raw upstream on 127.0.0.1 that records every
connection and request it sees: streaming both ways, chunked request bodies, keep-alive reuse,
errors (502 on a closed port, 504 on timeouts) and header handling. Where the real Caddy can
serve the same config, the client sees the same bytes from both."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.engine.conftest import server_config
from tests.engine.wire import exchange, serve_each
from tests.support import free_port


@dataclass
class Seen:
    """One request as the upstream received it."""

    conn: int
    head: bytes
    body: bytes

    def header(self, name: str) -> list[str]:
        out = []
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.decode().lower() == name.lower():
                out.append(v.strip().decode())
        return out


def read_head(sock: socket.socket, buf: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    return head


def read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("upstream client went away mid-body")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def read_line(sock: socket.socket, buf: bytearray) -> bytes:
    while b"\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("upstream client went away mid-chunk")
        buf += chunk
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


def read_body(sock: socket.socket, buf: bytearray, head: bytes) -> bytes:
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while size := int(read_line(sock, buf).split(b";")[0], 16):
            body += read_exact(sock, buf, size)
            read_line(sock, buf)
        while read_line(sock, buf):
            pass
        return body
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return read_exact(sock, buf, int(line.split(b":")[1]))
    return b""


Answer = Callable[[Seen, socket.socket], None]


def plain(body: bytes = b"ok", extra: bytes = b"") -> Answer:
    """An answer with a Content-Length body."""

    def answer(_: Seen, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body)

    return answer


@dataclass
class Upstream:
    """A threaded raw HTTP/1.1 server: `answer` writes each response itself."""

    answer: Answer
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    # Connections the proxy holds open right now.
    open: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.dial = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c, self.connections), daemon=True).start()

    def _serve(self, c: socket.socket, n: int) -> None:
        buf = bytearray()
        with self.lock:
            self.open += 1
        with c:
            try:
                while (head := read_head(c, buf)) is not None:
                    seen = Seen(n, head, read_body(c, buf, head))
                    self.seen.append(seen)
                    self.answer(seen, c)
            except OSError:
                pass
        with self.lock:
            self.open -= 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[Callable[[Answer], Upstream]]:
    made: list[Upstream] = []

    def make(answer: Answer) -> Upstream:
        made.append(Upstream(answer))
        return made[-1]

    yield make
    for u in made:
        u.close()


def proxy_to(dial: str, **handler: object) -> dict:
    return server_config(
        [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}], **handler}]}]
    )


def split(raw: bytes) -> tuple[bytes, dict[str, list[str]], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields: dict[str, list[str]] = {}
    for line in lines[1:]:
        k, _, v = line.decode().partition(":")
        fields.setdefault(k.lower(), []).append(v.strip())
    return lines[0], fields, body


def get(port: int, path: str = "/", extra: bytes = b"", quiet: float = 0.25) -> bytes:
    req = b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n" % (path.encode(), extra)
    return exchange(port, req, quiet=quiet).data


def test_forwarded_headers_via_and_host(servers, upstream) -> None:
    up = upstream(plain())
    _, port = servers.engine(proxy_to(up.dial), workers=1)
    get(port, "/a?q=1", b"X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-Proto: https\r\n")
    s = up.seen[-1]
    assert s.head.startswith(b"GET /a?q=1 HTTP/1.1\r\nHost: t\r\n")
    # An untrusted client's forwarding headers are replaced, not extended.
    assert s.header("X-Forwarded-For") == ["127.0.0.1"]
    assert s.header("X-Forwarded-Proto") == ["http"]
    assert s.header("X-Forwarded-Host") == ["t"]
    assert s.header("Via") == ["1.1 Caddy"]
    assert s.header("Accept-Encoding") == ["gzip"]
    assert s.header("Connection") == [] and s.header("User-Agent") == []


def test_trusted_proxy_keeps_prior_forwarding(servers, upstream) -> None:
    up = upstream(plain())
    cfg = proxy_to(up.dial)
    cfg["apps"]["http"]["servers"]["srv0"]["trusted_proxies"] = {
        "source": "static",
        "ranges": ["127.0.0.0/8"],
    }
    _, port = servers.engine(cfg, workers=1)
    get(port, "/", b"X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-Proto: https\r\n")
    s = up.seen[-1]
    assert s.header("X-Forwarded-For") == ["203.0.113.5, 127.0.0.1"]
    assert s.header("X-Forwarded-Proto") == ["https"]


def test_header_up_down_with_upstream_placeholders(servers, upstream) -> None:
    up = upstream(plain(extra=b"X-Secret: s\r\nX-Keep: k\r\n"))
    cfg = proxy_to(
        up.dial,
        headers={
            "request": {
                "set": {"Host": ["{http.reverse_proxy.upstream.hostport}"], "X-Up": ["1"]},
                "delete": ["X-Drop"],
            },
            "response": {"delete": ["X-Secret"], "set": {"X-Down": ["{http.request.method}"]}},
        },
    )
    _, port = servers.engine(cfg, workers=1)
    status, fields, body = split(get(port, "/", b"X-Drop: 1\r\n"))
    s = up.seen[-1]
    assert s.header("Host") == [up.dial]
    assert s.header("X-Up") == ["1"] and s.header("X-Drop") == []
    # X-Forwarded-Host is the client's Host, from before header_up.
    assert s.header("X-Forwarded-Host") == ["t"]
    assert (status, body) == (b"HTTP/1.1 200 OK", b"ok")
    assert "x-secret" not in fields
    assert fields["x-keep"] == ["k"] and fields["x-down"] == ["GET"]
    assert fields["via"] == ["1.1 Caddy"] and "server" not in fields


def test_keep_alive_reuses_one_upstream_connection(servers, upstream) -> None:
    up = upstream(plain())
    _, port = servers.engine(proxy_to(up.dial), workers=1)
    for i in range(6):
        assert get(port, f"/{i}").endswith(b"\r\n\r\nok")
    assert [s.conn for s in up.seen] == [1] * 6
    assert up.connections == 1


def test_idle_connections_beyond_the_limit_are_closed(servers, upstream) -> None:
    """Five requests at once need five connections; once they are answered, only
    `max_idle_conns_per_host` stay open for reuse (the surplus within moments), as in Go."""

    def slow(seen: Seen, sock: socket.socket) -> None:
        time.sleep(0.2)
        plain()(seen, sock)

    up = upstream(slow)
    transport = {"protocol": "http", "keep_alive": {"max_idle_conns_per_host": 2}}
    _, port = servers.engine(proxy_to(up.dial, transport=transport), workers=1)
    answers: list[bytes] = []
    clients = [threading.Thread(target=lambda: answers.append(get(port))) for _ in range(5)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    assert len(answers) == 5 and all(a.endswith(b"\r\n\r\nok") for a in answers)
    assert up.connections == 5
    deadline = time.monotonic() + 2
    while up.open > 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert up.open == 2
    assert get(port).endswith(b"\r\n\r\nok")
    assert up.connections == 5


def test_upstream_close_is_noticed_and_next_request_redials(servers, upstream) -> None:
    def once(_: Seen, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        sock.shutdown(socket.SHUT_RDWR)

    up = upstream(once)
    _, port = servers.engine(proxy_to(up.dial), workers=1)
    for _ in range(3):
        assert get(port).endswith(b"\r\n\r\nok")
        time.sleep(0.1)
    assert up.connections == 3


def test_chunked_request_body_is_forwarded_chunked(servers, upstream) -> None:
    up = upstream(plain())
    _, port = servers.engine(proxy_to(up.dial), workers=1)
    head = b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    pieces = [head, b"5\r\nhello\r\n", b"6;ext=1\r\n world\r\n", b"0\r\n\r\n"]
    assert exchange(port, pieces).data.endswith(b"\r\n\r\nok")
    s = up.seen[-1]
    assert s.body == b"hello world"
    assert s.header("Transfer-Encoding") == ["chunked"] and s.header("Content-Length") == []


def test_large_bodies_stream_both_ways(servers, upstream) -> None:
    big = bytes(range(256)) * 16384  # 4 MiB

    def echo_digest(seen: Seen, sock: socket.socket) -> None:
        digest = hashlib.sha256(seen.body).hexdigest().encode()
        head = b"HTTP/1.1 200 OK\r\nX-Digest: %s\r\nContent-Length: %d\r\n\r\n"
        sock.sendall(head % (digest, len(big)))
        for i in range(0, len(big), 65536):
            sock.sendall(big[i : i + 65536])

    up = upstream(echo_digest)
    _, port = servers.engine(proxy_to(up.dial), workers=1)
    upload = bytes(reversed(big))
    req = b"PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(upload)
    raw = exchange(port, req + upload, quiet=2.0, limit=30.0).data
    status, fields, body = split(raw)
    assert status == b"HTTP/1.1 200 OK"
    assert fields["x-digest"] == [hashlib.sha256(upload).hexdigest()]
    assert fields["content-length"] == [str(len(big))]
    assert body == big


def test_pooled_connection_reads_again_after_a_slow_client(servers, upstream) -> None:
    """A body that outran its client pauses the upstream's reads; the connection goes back
    to the pool and carries the next request (it used to wait forever for an answer)."""
    big = bytes(range(256)) * 20480  # 5 MiB

    def answer(seen: Seen, sock: socket.socket) -> None:
        body = big if seen.head.startswith(b"GET /big ") else b"ok"
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    up = upstream(answer)
    _, port = servers.engine(proxy_to(up.dial), workers=1)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        buf = bytearray()
        c.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.5)  # the client lags: the engine holds the body back
        assert read_body(c, buf, read_head(c, buf) or b"") == big
        c.sendall(b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n")
        head = read_head(c, buf) or b""
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert read_body(c, buf, head) == b"ok"
    assert up.connections == 1


def test_response_streams_before_upstream_finishes(servers, upstream) -> None:
    release = threading.Event()

    def slow(_: Seen, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"5\r\nfirst\r\n")
        release.wait(10)
        sock.sendall(b"4\r\nlast\r\n0\r\n\r\n")

    up = upstream(slow)
    _, port = servers.engine(proxy_to(up.dial), workers=1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while b"first" not in got:
            got += c.recv(65536)
        # The first chunk arrived while the upstream still holds the rest back.
        assert b"last" not in got
        assert b"Transfer-Encoding: chunked\r\n" in got
        release.set()
        while not got.endswith(b"0\r\n\r\n"):
            got += c.recv(65536)
    assert got.endswith(b"\r\n\r\n5\r\nfirst\r\n4\r\nlast\r\n0\r\n\r\n")


def test_closed_port_is_502_through_error_routes(servers) -> None:
    dead = f"127.0.0.1:{free_port()}"
    cfg = proxy_to(dead)
    srv = cfg["apps"]["http"]["servers"]["srv0"]
    srv["errors"] = {
        "routes": [
            {
                "handle": [
                    {
                        "handler": "static_response",
                        "body": "{http.error.status_code} {http.error.message}",
                    }
                ]
            }
        ]
    }
    _, port = servers.engine(cfg, workers=1)
    status, _, body = split(get(port))
    assert status == b"HTTP/1.1 502 Bad Gateway"
    assert body == f"502 dial tcp {dead}: connect: connection refused".encode()
    _, plain_port = servers.engine(proxy_to(dead), workers=1)
    status, fields, body = split(get(plain_port))
    assert (status, body, fields["content-length"]) == (b"HTTP/1.1 502 Bad Gateway", b"", ["0"])


def test_response_header_timeout_is_504(servers, upstream) -> None:
    def never(_: Seen, sock: socket.socket) -> None:
        time.sleep(3)

    up = upstream(never)
    transport = {"protocol": "http", "response_header_timeout": "300ms"}
    _, port = servers.engine(proxy_to(up.dial, transport=transport), workers=1)
    started = time.monotonic()
    status, _, _ = split(get(port, quiet=2.0))
    assert status == b"HTTP/1.1 504 Gateway Timeout"
    assert time.monotonic() - started < 2.5


def test_retries_move_to_a_live_upstream(servers, upstream) -> None:
    up = upstream(plain(b"alive"))
    dead = f"127.0.0.1:{free_port()}"
    cfg = server_config(
        [
            {
                "handle": [
                    {
                        "handler": "reverse_proxy",
                        "upstreams": [{"dial": dead}, {"dial": up.dial}],
                        "load_balancing": {
                            "selection_policy": {"policy": "round_robin"},
                            "retries": 2,
                        },
                    }
                ]
            }
        ]
    )
    _, port = servers.engine(cfg, workers=1)
    for _ in range(3):
        assert get(port).endswith(b"\r\n\r\nalive")


CASES = [
    ("content_length", b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-Length: 5\r\n\r\nhello"),
    (
        "chunked",
        b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    ),
    ("close_delimited", b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close"),
    ("sniffed_html", b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html>hi</html"),
    ("no_content", b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
    (
        "early_hints",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
    ),
    (
        "hop_by_hop",
        b"HTTP/1.1 200 OK\r\nConnection: X-Gone\r\nX-Gone: 1\r\nKeep-Alive: t\r\n"
        b"Content-Length: 0\r\n\r\n",
    ),
]


@pytest.mark.parametrize(("name", "response"), CASES, ids=[c[0] for c in CASES])
def test_same_bytes_as_caddy(servers, name: str, response: bytes) -> None:
    """Upstream responses of every framing reach the client as Caddy sends them."""
    listener = socket.create_server(("127.0.0.1", 0))
    dial = f"127.0.0.1:{listener.getsockname()[1]}"

    def answer(c: socket.socket) -> None:
        with c:
            if read_head(c, bytearray()) is not None:
                c.sendall(response)

    serve_each(listener, answer, threaded=False)
    try:
        caddy_port, engine_port = servers.ports(proxy_to(dial))
        for req in [b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /x HTTP/1.0\r\nHost: t\r\n\r\n"]:
            ours = exchange(engine_port, req, quiet=1.0).normalized()
            theirs = exchange(caddy_port, req, quiet=1.0).normalized()
            assert ours == theirs, name
    finally:
        listener.close()


def test_upgrade_tunnels_both_ways_like_caddy(servers) -> None:
    """A 101 for the protocol the client asked for: passed on, then raw bytes both ways
    (including what the client sent right after its head) until the upstream closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    dial = f"127.0.0.1:{listener.getsockname()[1]}"

    def answer(c: socket.socket) -> None:
        with c:
            buf = bytearray()
            if read_head(c, buf) is None:
                return
            c.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-Websocket-Accept: abc\r\n\r\nhello"
            )
            if buf:
                c.sendall(b"echo:" + bytes(buf))
            while (data := c.recv(65536)) and data != b"bye":
                c.sendall(b"echo:" + data)

    serve_each(listener, answer, threaded=False)
    head = (
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        caddy_port, engine_port = servers.ports(proxy_to(dial))
        results = []
        for port in (engine_port, caddy_port):
            pieces = [head + b"early", b"ping", b"bye"]
            results.append(exchange(port, pieces, quiet=1.0).normalized())
        assert results[0] == results[1]
        data, end = results[0]
        assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Sec-WebSocket-Accept: abc\r\n" in data
        assert data.endswith(b"\r\n\r\nhelloecho:earlyecho:ping") and end == "closed"
    finally:
        listener.close()


def test_intercept_replaces_a_proxied_response_like_caddy(servers, upstream) -> None:
    up = upstream(
        lambda seen, sock: sock.sendall(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\nX-Up: 1\r\n\r\nmissing"
            if b"/missing" in seen.head
            else b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfound"
        )
    )
    intercept = {
        "handler": "intercept",
        "handle_response": [
            {
                "match": {"status_code": [404]},
                "routes": [
                    {
                        "handle": [
                            {
                                "handler": "static_response",
                                "body": "caught {http.intercept.status_code}",
                            }
                        ]
                    }
                ],
            }
        ],
    }
    rp = {"handler": "reverse_proxy", "upstreams": [{"dial": up.dial}]}
    caddy_port, engine_port = servers.ports(server_config([{"handle": [intercept, rp]}]))
    for path in ("/missing", "/there"):
        req = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode()
        ours = exchange(engine_port, req).normalized()
        assert ours == exchange(caddy_port, req).normalized(), path
    # The intercepted answer keeps the upstream's Content-Length (the header map is shared), and
    # Go refuses the longer body written under it: head only, then the connection closes.
    r = exchange(engine_port, b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
    assert r.data.endswith(b" GMT\r\n\r\n") and r.end == "closed"
    assert exchange(engine_port, b"GET /there HTTP/1.1\r\nHost: t\r\n\r\n").data.endswith(b"found")


def dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += body[:size]
        body = body[size + 2 :]


def decoded(raw: bytes) -> tuple[bytes, dict[str, list[str]], bytes]:
    """Status line, fields without Date, and the body de-chunked and decompressed."""
    status, fields, body = split(raw)
    fields.pop("date", None)
    if fields.get("transfer-encoding") == ["chunked"]:
        body = dechunk(body)
    if fields.get("content-encoding") == ["gzip"]:
        # Two correct compressors emit different bytes: compare what they encode, and that
        # both framed it by length (or not).
        body = gzip.decompress(body)
        fields["content-length"] = ["(compressed)"] if "content-length" in fields else []
    return status, fields, body


def test_encode_compresses_a_streamed_response_like_caddy(servers, upstream) -> None:
    page = b"<html>" + b"streamed text " * 300 + b"</html>"
    # compresses to well over Go's 2 KiB buffer: chunked even with a known length
    noise = hashlib.sha256(b"seed").hexdigest().encode() * 1
    for i in range(400):
        noise += hashlib.sha256(noise[-64:] + bytes([i % 256])).hexdigest().encode()

    def answer(seen: Seen, sock: socket.socket) -> None:
        if b"/small" in seen.head:
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nsmall"
            )
        elif b"/chunked" in seen.head:
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(page), page))
        elif b"/big" in seen.head:
            body = b"" if seen.head.startswith(b"HEAD") else noise
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                % len(noise)
                + body
            )
        elif b"/image" in seen.head:
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n"
                % len(page)
                + page
            )
        else:
            body = b"" if seen.head.startswith(b"HEAD") else page
            head = b'HTTP/1.1 200 OK\r\nETag: "v1"\r\nContent-Length: %d\r\n\r\n' % len(page)
            sock.sendall(head + body)

    up = upstream(answer)
    encode = {"handler": "encode", "encodings": {"gzip": {}}, "prefer": ["gzip"]}
    rp = {"handler": "reverse_proxy", "upstreams": [{"dial": up.dial}]}
    caddy_port, engine_port = servers.ports(server_config([{"handle": [encode, rp]}]))
    for path in ("/page", "/small", "/chunked", "/image", "/big"):
        req = (
            b"GET %s HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
            % path.encode()
        )
        ours = decoded(exchange(engine_port, req).data)
        assert ours == decoded(exchange(caddy_port, req).data), path
        assert ours[2] in (page, b"small", noise), path
    # HEAD: judged by its declared length and type (none here for /page: not encoded); the
    # length sent is that of the empty gzip stream
    for path in (b"/page", b"/big"):
        head = b"HEAD %s HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n" % path
        ours = exchange(engine_port, head).normalized()
        assert ours == exchange(caddy_port, head).normalized(), path
    assert b"Content-Encoding: gzip\r\n" in ours[0]


EXCHANGES = {
    "expect_continue": [
        b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        b"hello",
    ],
    "pipelined": [b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n"],
    "post_then_get": [
        b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /g HTTP/1.1\r\nHost: t\r\n\r\n"
    ],
    "http10_keep_alive": [b"GET /k HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"],
    "head": [b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"],
}


@pytest.mark.parametrize("name", list(EXCHANGES))
def test_connection_handling_like_caddy(servers, upstream, name: str) -> None:
    """Interim responses, pipelining and keep-alive around a proxied exchange."""

    def echo_body(seen: Seen, sock: socket.socket) -> None:
        body = seen.head.split(b"\r\n")[0] + b" " + seen.body
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    up = upstream(echo_body)
    caddy_port, engine_port = servers.ports(proxy_to(up.dial))
    ours = exchange(engine_port, EXCHANGES[name], quiet=0.5).normalized()
    assert ours == exchange(caddy_port, EXCHANGES[name], quiet=0.5).normalized()


def test_forward_auth_then_proxy_with_a_body_like_caddy(servers, upstream) -> None:
    """The auth subrequest goes without the body; the request body reaches the app after it,
    with the header the auth answer copied."""

    def answer(seen: Seen, sock: socket.socket) -> None:
        if seen.head.startswith(b"GET /auth"):
            deny = b"deny" in seen.head
            status = b"401 Unauthorized" if deny else b"200 OK"
            sock.sendall(
                b"HTTP/1.1 %s\r\nRemote-User: alice\r\nContent-Length: 2\r\n\r\nno" % status
            )
            return
        user = ",".join(seen.header("Remote-User")).encode()
        body = seen.head.split(b"\r\n")[0] + b" user=" + user + b" body=" + seen.body
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    up = upstream(answer)
    copy_user = {
        "handle": [
            {
                "handler": "headers",
                "request": {"set": {"Remote-User": ["{http.reverse_proxy.header.Remote-User}"]}},
            }
        ]
    }
    auth = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": up.dial}],
        "rewrite": {"method": "GET", "uri": "/auth"},
        "headers": {"request": {"set": {"X-Forwarded-Uri": ["{http.request.uri}"]}}},
        "handle_response": [{"match": {"status_code": [2]}, "routes": [copy_user]}],
    }
    app = {"handler": "reverse_proxy", "upstreams": [{"dial": up.dial}]}
    caddy_port, engine_port = servers.ports(server_config([{"handle": [auth, app]}]))
    for path in (b"/ok", b"/deny"):
        req = [
            b"POST %s HTTP/1.1\r\nHost: t\r\nRemote-User: mallory\r\nContent-Length: 5\r\n\r\n"
            % path,
            b"hello",
        ]
        ours = exchange(engine_port, req, quiet=0.5).normalized()
        assert ours == exchange(caddy_port, req, quiet=0.5).normalized(), path
    assert ours[0].endswith(b"\r\n\r\nno")
    ok = exchange(engine_port, req[0].replace(b"/deny", b"/ok") + req[1], quiet=0.5).data
    assert ok.endswith(b"POST /ok HTTP/1.1 user=alice body=hello")


def test_request_id_is_one_across_the_round_trip(servers, upstream) -> None:
    """The routes run again once the upstream answered: {http.request.uuid} must not change."""
    up = upstream(plain())
    uuid = "{http.request.uuid}"
    cfg = proxy_to(
        up.dial,
        headers={
            "request": {"set": {"X-Request-Id": [uuid]}},
            "response": {"set": {"X-Request-Id": [uuid]}},
        },
    )
    _, port = servers.engine(cfg, workers=1)
    _, fields, _ = split(get(port))
    sent = up.seen[-1].header("X-Request-Id")
    assert len(sent) == 1 and len(sent[0]) == 36
    assert fields["x-request-id"] == sent


def test_unix_socket_upstream_like_caddy(servers, tmp_path) -> None:
    path = tmp_path / "app.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)

    def answer(c: socket.socket) -> None:
        with c:
            buf = bytearray()
            while (head := read_head(c, buf)) is not None:
                body = head.split(b"\r\n")[0]
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    serve_each(listener, answer)
    errors = {
        "routes": [{"handle": [{"handler": "static_response", "body": "{http.error.message}"}]}]
    }
    cfg = server_config(
        [
            {
                "match": [{"path": ["/missing"]}],
                "handle": [
                    {
                        "handler": "reverse_proxy",
                        "upstreams": [{"dial": f"unix/{tmp_path}/nothing.sock"}],
                    }
                ],
            },
            {"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": f"unix/{path}"}]}]},
        ],
        errors=errors,
    )
    try:
        caddy_port, engine_port = servers.ports(cfg)
        for req in [
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n",
        ]:
            ours = exchange(engine_port, req, quiet=0.5).normalized()
            assert ours == exchange(caddy_port, req, quiet=0.5).normalized()
        assert ours[0].endswith(b"nothing.sock: connect: no such file or directory")
    finally:
        listener.close()


def test_response_buffers_hold_the_head_like_caddy(servers) -> None:
    """response_buffers: the head waits until that much body (or all of it) is read, which
    then goes out as one chunk; framing stays chunked as Caddy keeps it."""
    listener = socket.create_server(("127.0.0.1", 0))
    dial = f"127.0.0.1:{listener.getsockname()[1]}"

    def answer(c: socket.socket) -> None:
        with c:
            if read_head(c, bytearray()) is None:
                return
            c.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
            )
            time.sleep(0.3)
            c.sendall(b"6\r\n world\r\n0\r\n\r\n")
            time.sleep(0.2)

    serve_each(listener, answer)

    def fetch(port: int) -> tuple[bool, bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            started = time.monotonic()
            data = s.recv(65536)
            waited = time.monotonic() - started > 0.2
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return waited, body

    try:
        results = {}
        for buffers in (0, 1000, -1, 3):
            handler: dict = {"response_buffers": buffers} if buffers else {}
            caddy_port, engine_port = servers.ports(proxy_to(dial, **handler))
            results[buffers] = (fetch(caddy_port), fetch(engine_port))
        assert {k: v[1] for k, v in results.items()} == {k: v[0] for k, v in results.items()}
        assert results[1000][0] == (True, b"b\r\nhello world\r\n0\r\n\r\n")
        assert results[3][0] == (False, b"3\r\nhel\r\n2\r\nlo\r\n6\r\n world\r\n0\r\n\r\n")
    finally:
        listener.close()
