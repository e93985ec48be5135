"""reverse_proxy options against the reference Caddy: placeholders in `dial` resolved per
request (and Caddy's errors when the result is not one address), `flush_interval` (when the
client sees the bytes of a slowly written response), and `stream_timeout` /
`stream_close_delay` on upgraded connections."""

from __future__ import annotations

import socket
import time

from tests.engine.conftest import server_config
from tests.engine.test_reverse_proxy import Seen, read_head, split
from tests.engine.wire import exchange, serve_each
from tests.support import free_port

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
