"""reverse_proxy options against the reference Caddy: placeholders in `dial` resolved per
request (and Caddy's errors when the result is not one address), `flush_interval` (when the
client sees the bytes of a slowly written response), and `stream_timeout` /
`stream_close_delay` on upgraded connections."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import VENV_BIN
from tests.engine.conftest import server_config, with_listen
from tests.engine.test_reverse_proxy import Seen, read_head, split
from tests.engine.wire import exchange, serve_each, wait_listening
from tests.support import clean_env, free_port

# Error routes that show what failed, so that Caddy's texts are compared too.
SHOW_ERROR = {
    "errors": {
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
}


def named_upstream(name: bytes) -> tuple[socket.socket, str]:
    """An upstream that answers every request with its name and the `X-Dialed` it was sent."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(c: socket.socket) -> None:
        buf = bytearray()
        with c:
            while (head := read_head(c, buf)) is not None:
                dialed = Seen(0, head, b"").header("X-Dialed")
                body = name + b" " + ",".join(dialed).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    serve_each(listener, answer)
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def dial_config(dial: str, **handler: object) -> dict:
    proxy = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": dial}],
        "headers": {
            "request": {"set": {"X-Dialed": ["{http.reverse_proxy.upstream.hostport}"]}},
            "response": {
                "set": {
                    "X-Up": [
                        "{http.reverse_proxy.upstream.address}|{http.reverse_proxy.upstream.host}"
                        "|{http.reverse_proxy.upstream.port}"
                    ]
                }
            },
        },
        **handler,
    }
    return server_config([{"handle": [proxy]}], **SHOW_ERROR)


def ask(port: int, backend: str | None, quiet: float = 0.25) -> tuple[bytes, str]:
    extra = f"X-Backend: {backend}\r\n".encode() if backend is not None else b""
    req = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + b"\r\n"
    got = exchange(port, req, quiet=quiet)
    status, fields, body = split(got.normalized()[0])
    return status + b" " + ",".join(fields.get("x-up", [])).encode() + b" " + body, got.end


def test_dial_placeholders_resolve_per_request_like_caddy(servers, tmp_path) -> None:
    a, a_dial = named_upstream(b"a")
    b, b_dial = named_upstream(b"b")
    closed = f"127.0.0.1:{free_port()}"
    try:
        caddy, engine = servers.ports(dial_config("{http.request.header.X-Backend}"))
        backends = [
            a_dial,
            b_dial,
            a_dial,
            f"localhost:{b_dial.rsplit(':', 1)[1]}",
            None,
            "",
            "127.0.0.1",
            "127.0.0.1:1-3",
            "127.0.0.1:http",
            "127.0.0.1:99999",
            "[::1",
            closed,
            f"unix/{tmp_path}/nothing.sock",
        ]
        want = [ask(caddy, x) for x in backends]
        assert [ask(engine, x) for x in backends] == want
        a_port = a_dial.rsplit(":", 1)[1]
        assert want[0][0] == f"HTTP/1.1 200 OK tcp/{a_dial}|127.0.0.1|{a_port} a {a_dial}".encode()
        assert want[1][0].endswith(f" b {b_dial}".encode())
        assert all(w[0].startswith(b"HTTP/1.1 502 ") for w in want[4:]), want
    finally:
        a.close()
        b.close()


def test_dial_placeholder_port_and_env_like_caddy(servers, monkeypatch) -> None:
    a, a_dial = named_upstream(b"a")
    host, port = a_dial.rsplit(":", 1)
    monkeypatch.setenv("ZS_TEST_BACKEND", a_dial)
    try:
        for dial, backends in [
            (f"{host}:{{http.request.header.X-Backend}}", [port, None, "x", f"{port}-{port}"]),
            ("{env.ZS_TEST_BACKEND}", [None]),
            ("{env.ZS_TEST_UNSET}", [None]),
        ]:
            caddy, engine = servers.ports(dial_config(dial))
            want = [ask(caddy, x) for x in backends]
            assert [ask(engine, x) for x in backends] == want, dial
        assert want[0][0].startswith(b"HTTP/1.1 502 ")
    finally:
        a.close()


def test_bad_dial_address_is_not_retried_like_caddy(servers) -> None:
    """A dial address that is not one socket ends the request at once: Caddy neither retries
    nor waits out `try_duration`, as it does for a refused dial (here port 0, what an address
    without a port means)."""
    config = dial_config(
        "{http.request.header.X-Backend}",
        load_balancing={"try_duration": "1s", "try_interval": "100ms"},
    )
    caddy, engine = servers.ports(config)
    timings = {}
    for name, port in (("caddy", caddy), ("engine", engine)):
        for backend in ("127.0.0.1:1-3", "127.0.0.1"):
            started = time.monotonic()
            status, _ = ask(port, backend, quiet=2.0)
            assert status.startswith(b"HTTP/1.1 502 "), (name, backend, status)
            timings[name, backend] = time.monotonic() - started
    for name in ("caddy", "engine"):
        assert timings[name, "127.0.0.1:1-3"] < 0.5, timings
        assert 0.9 < timings[name, "127.0.0.1"] < 1.6, timings


class Tunnel:
    """An upstream that switches to WebSocket and records what reaches it afterwards."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.closed_after: list[float] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.dial = f"127.0.0.1:{self.listener.getsockname()[1]}"
        serve_each(self.listener, self.session)

    def session(self, c: socket.socket) -> None:
        with c:
            if read_head(c, bytearray()) is None:
                return
            c.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            started = time.monotonic()
            while data := c.recv(4096):
                self.got.append(data)
            self.closed_after.append(time.monotonic() - started)


def open_tunnel(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(
        b"GET /chat HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    head = read_head(s, bytearray())
    assert head is not None and head.startswith(b"HTTP/1.1 101 "), head
    return s


def until_closed(s: socket.socket, limit: float = 4.0) -> tuple[bytes, float]:
    """What arrives until the peer closes, and when it closed (from now)."""
    started = time.monotonic()
    s.settimeout(limit)
    got = b""
    while data := s.recv(4096):
        got += data
    return got, time.monotonic() - started


def unmasked(frame: bytes) -> tuple[bool, bytes]:
    """A client frame's payload: (was it masked, the payload)."""
    n = frame[1] & 0x7F
    if not frame[1] & 0x80:
        return False, frame[2 : 2 + n]
    key = frame[2:6]
    return True, bytes(b ^ key[i % 4] for i, b in enumerate(frame[6 : 6 + n]))


def test_stream_timeout_closes_a_tunnel_like_caddy(servers) -> None:
    """Both ends are closed when `stream_timeout` runs out, without a Close frame."""
    results = []
    for which in ("caddy", "engine"):
        up = Tunnel()
        try:
            config = server_config(
                [
                    {
                        "handle": [
                            {
                                "handler": "reverse_proxy",
                                "upstreams": [{"dial": up.dial}],
                                "stream_timeout": "1s",
                            }
                        ]
                    }
                ]
            )
            port = servers.caddy(config) if which == "caddy" else servers.engine(config)[1]
            with open_tunnel(port) as s:
                s.sendall(b"ping")
                got, after = until_closed(s)
            time.sleep(0.2)
            results.append((which, got, round(after), b"".join(up.got), len(up.closed_after)))
        finally:
            up.listener.close()
    assert results[0][1:] == results[1][1:] == (b"", 1, b"ping", 1), results


def caddy_with_admin(workdir, config: dict) -> tuple[subprocess.Popen, int, int]:
    """Caddy serving `config` with its admin endpoint on (the fixture's Caddys have none)."""
    port, admin = free_port(), free_port()
    cfg = with_listen(config, port)
    cfg["admin"] = {"listen": f"127.0.0.1:{admin}"}
    path = workdir / "caddy-admin.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen(
        [str(VENV_BIN / "caddy"), "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    wait_listening(port)
    return proc, port, admin


def tunnel_config(dial: str, i: int, **handler: object) -> dict:
    """A proxy to `dial`, plus a route that tells reload `i` apart."""
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": dial}], **handler}
    marker = {"match": [{"path": [f"/reload-{i}"]}], "handle": [{"handler": "static_response"}]}
    return server_config([marker, {"handle": [proxy]}])


@pytest.mark.parametrize("delay", [None, "1s"])
def test_reload_closes_tunnels_after_stream_close_delay_like_caddy(
    servers, tmp_path, delay: str | None
) -> None:
    """On a reload Caddy sends a Close frame (1001, going away) to both ends of a WebSocket
    and closes it: at once by default, after `stream_close_delay` when set. The engine does
    the same with a delay; without one it keeps the WebSocket open (a product promise, a
    listed difference)."""
    handler = {"stream_close_delay": delay} if delay else {}
    outcomes = {}
    for which in ("caddy", "engine"):
        up = Tunnel()
        proc = None
        try:
            first, second = (tunnel_config(up.dial, i, **handler) for i in (0, 1))
            if which == "caddy":
                proc, port, admin = caddy_with_admin(tmp_path, first)
                with open_tunnel(port) as s:
                    second_cfg = with_listen(second, port)
                    second_cfg["admin"] = {"listen": f"127.0.0.1:{admin}"}
                    body = json.dumps(second_cfg).encode()
                    req = urllib.request.Request(
                        f"http://127.0.0.1:{admin}/load",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    )
                    urllib.request.urlopen(req, timeout=5).read()
                    got, after = until_closed(s)
            else:
                engine, port = servers.engine(first)
                with open_tunnel(port) as s:
                    engine.reload(json.dumps(with_listen(second, port)))
                    s.settimeout(1.5)
                    try:
                        got, after = until_closed(s, limit=1.5 if delay is None else 4.0)
                    except TimeoutError:
                        # Still open: the tunnel carries bytes after the reload.
                        s.sendall(b"still there")
                        time.sleep(0.2)
                        got, after = b"open", -1.0
            time.sleep(0.2)
            upstream = [unmasked(f) for f in up.got] if got != b"open" else up.got
            outcomes[which] = (got, round(after), upstream)
        finally:
            up.listener.close()
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    going_away = b"\x88\x02\x03\xe9"
    if delay:
        assert outcomes["engine"] == outcomes["caddy"] == (going_away, 1, [(True, b"\x03\xe9")])
    else:
        assert outcomes["caddy"] == (going_away, 0, [(True, b"\x03\xe9")])
        assert outcomes["engine"] == (b"open", -1, [b"still there"])


def paced_upstream(plan: list[tuple[float, bytes]]) -> tuple[socket.socket, str]:
    """An upstream that writes each piece of `plan` after its pause."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(c: socket.socket) -> None:
        with c:
            if read_head(c, bytearray()) is None:
                return
            for pause, data in plan:
                time.sleep(pause)
                c.sendall(data)
            time.sleep(0.3)

    serve_each(listener, answer)
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def timeline(port: int) -> list[tuple[float, int]]:
    """When the client received how much (in total): bursts closer than 80 ms are one."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        started = time.monotonic()
        events: list[tuple[float, int]] = []
        total = 0
        while data := s.recv(65536):
            total += len(data)
            now = time.monotonic() - started
            if events and now - events[-1][0] < 0.08:
                events[-1] = (events[-1][0], total)
            else:
                events.append((now, total))
    return events


def head(length: int, content_type: bytes = b"text/plain") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        content_type,
        length,
    )


K = b"k" * 1000
FLUSH_CASES = {
    # flush_interval 0 (the default): a short body waits in Go's buffers until the end.
    "default_short": ({}, [(0, head(10) + b"hello"), (0.4, b"world")]),
    "interval": ({"flush_interval": "200ms"}, [(0, head(10) + b"hello"), (0.6, b"world")]),
    "immediate": ({"flush_interval": -1}, [(0, head(10) + b"hello"), (0.4, b"world")]),
    # Server-Sent Events and unknown lengths are flushed write by write anyway.
    "event_stream": ({}, [(0, head(10, b"text/event-stream") + b"hello"), (0.4, b"world")]),
    "chunked": (
        {},
        [
            (
                0,
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            ),
            (0.4, b"5\r\nworld\r\n0\r\n\r\n"),
        ],
    ),
    # Small writes leave 4096 bytes at a time (the connection buffer), large ones pass.
    "default_small_writes": ({}, [(0, head(9000))] + [(0.15, K)] * 9),
    "default_mixed_writes": (
        {},
        [
            (0, head(30000) + b"x" * 3000),
            (0.3, b"y" * 5000),
            (0.3, b"z" * 1500),
            (0.3, b"w" * 20500),
        ],
    ),
    "interval_small_writes": ({"flush_interval": "400ms"}, [(0, head(7000))] + [(0.15, K)] * 7),
}


@pytest.mark.parametrize("name", FLUSH_CASES)
def test_flush_interval_timing_like_caddy(servers, name: str) -> None:
    """The client sees the same amounts of a slowly written response at the same moments."""
    handler, plan = FLUSH_CASES[name]
    listener, dial = paced_upstream(plan)
    try:
        config = server_config(
            [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}], **handler}]}]
        )
        caddy_port, engine_port = servers.ports(config)
        want, got = timeline(caddy_port), timeline(engine_port)
    finally:
        listener.close()
    assert [n for _, n in got] == [n for _, n in want], (got, want)
    for (t_got, _), (t_want, _) in zip(got, want, strict=True):
        assert abs(t_got - t_want) < 0.2, (got, want)


@pytest.mark.parametrize("sent", [1000, 3000, 9000])
def test_cut_short_body_sends_what_was_held_like_caddy(servers, sent: int) -> None:
    """An upstream that closes before its Content-Length is reached: what Go's writer held
    (head included) still reaches the client before the connection closes."""
    listener, dial = paced_upstream([(0, head(20000) + b"x" * sent)])
    try:
        config = server_config(
            [{"handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}]}]
        )
        caddy_port, engine_port = servers.ports(config)
        req = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        want = exchange(caddy_port, req, quiet=1.0).normalized()
        got = exchange(engine_port, req, quiet=1.0).normalized()
    finally:
        listener.close()
    assert got == want
    assert want[0].endswith(b"x" * sent) and want[1] == "closed"
