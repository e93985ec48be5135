"""Engine lifecycle through the Python API: start, reload (atomic, keeps serving on error),
graceful and hard stop, errors with Caddy-like text, and the doctor's probe."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.engine.conftest import engine_mod, server_config, with_listen
from tests.engine.wire import exchange
from tests.support import free_port


def respond(body: str) -> dict:
    return server_config([{"handle": [{"handler": "static_response", "body": body}]}])


def get(sock: socket.socket, path: str = "/") -> bytes:
    """One keep-alive request on an open connection; returns the body."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(4096)
    return body


def test_probe_reports_the_opcodes_the_workers_use():
    report = engine_mod.probe()
    assert report["setup"] is True and report["error"] is None
    assert set(report["opcodes"]) >= {"IORING_OP_ACCEPT", "IORING_OP_RECV", "IORING_OP_SEND"}
    assert all(report["opcodes"].values())


def test_python_face_reexports_the_extension():
    from zeroserve import engine

    assert engine.Engine is engine_mod.Engine and engine.EngineError is engine_mod.EngineError


@pytest.mark.parametrize(
    "config, message",
    [
        ("{", "decoding config: EOF while parsing an object at line 1 column 1"),
        (
            json.dumps(server_config([{"handle": [{"handler": "nope"}]}])),
            "loading http app module: provision http: server srv0: route 0: "
            "loading handler modules: position 0: unknown module: http.handlers.nope",
        ),
        (
            json.dumps(server_config([{"match": [{"nope": 1}]}])),
            "loading http app module: provision http: server srv0: route 0: "
            "loading matcher modules: module name 'nope': unknown module: http.matchers.nope",
        ),
        (
            json.dumps(server_config([{"match": [{"path_regexp": {"pattern": "(["}}]}])),
            "loading http app module: provision http: server srv0: route 0: "
            "loading matcher modules: compiling matcher regexp ([: error parsing regexp: ",
        ),
    ],
)
def test_bad_config_is_one_line_engine_error(config, message):
    with pytest.raises(engine_mod.EngineError) as err:
        engine_mod.Engine(config)
    assert str(err.value).startswith(message)


def test_listen_addresses_and_wait(servers):
    e, port = servers.engine(respond("x"), workers=2)
    assert e.listen_addresses() == [f"127.0.0.1:{port}"]
    assert e.wait(0.05) is False
    e.stop(0.0)
    assert e.wait(5.0) is True
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_bind_conflict_is_engine_error():
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        e = engine_mod.Engine(json.dumps(with_listen(respond("x"), port)), 1)
        with pytest.raises(engine_mod.EngineError, match=f"listening on tcp/127.0.0.1:{port}"):
            e.start()
        assert e.wait(1.0)


def test_every_worker_serves(servers):
    """SO_REUSEPORT spreads connections; all of them must be answered."""
    _, port = servers.engine(respond("ok"), workers=2)
    for _ in range(40):
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            assert get(s) == b"ok"


def test_reload_swaps_atomically_and_keepalive_continues(servers):
    e, port = servers.engine(respond("one"))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        assert get(s) == b"one"
        e.reload(json.dumps(with_listen(respond("two"), port)))
        assert get(s) == b"two"
    assert exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").data.endswith(b"two")


def test_in_flight_request_finishes_on_old_config(servers):
    e, port = servers.engine(respond("old"))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab")
        time.sleep(0.1)
        e.reload(json.dumps(with_listen(respond("new"), port)))
        s.sendall(b"cde")
        assert read_response(s) == b"old"
        assert get(s) == b"new"


def test_failed_reload_keeps_old_config(servers):
    e, port = servers.engine(respond("kept"))
    bad = server_config([{"handle": [{"handler": "no_such_handler"}]}])
    with pytest.raises(engine_mod.EngineError, match="http.handlers.no_such_handler"):
        e.reload(json.dumps(with_listen(bad, port)))
    assert exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").data.endswith(b"kept")


def test_reload_moves_listeners(servers):
    e, old_port = servers.engine(respond("a"))
    new_port = free_port()
    e.reload(json.dumps(with_listen(respond("b"), new_port)))
    assert e.listen_addresses() == [f"127.0.0.1:{new_port}"]
    assert exchange(new_port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").data.endswith(b"b")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old_port), timeout=1)


def test_graceful_stop_finishes_in_flight_and_closes_idle(servers):
    e, port = servers.engine(respond("bye"))
    idle = socket.create_connection(("127.0.0.1", port), timeout=3)
    assert get(idle) == b"bye"
    busy = socket.create_connection(("127.0.0.1", port), timeout=3)
    busy.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    time.sleep(0.1)
    stopper = threading.Thread(target=e.stop, args=(5.0,))
    stopper.start()
    assert idle.recv(1) == b"", "idle keep-alive connection is closed at once"
    time.sleep(0.1)
    assert stopper.is_alive(), "stop waits for the in-flight request"
    busy.sendall(b"\r\n")
    reply = busy.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in reply
    assert busy.recv(1) == b""
    stopper.join(5)
    assert not stopper.is_alive() and e.wait(1.0)
    idle.close()
    busy.close()


def test_grace_expiry_drops_stragglers(servers):
    e, port = servers.engine(respond("x"))
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(0.1)
        t0 = time.monotonic()
        e.stop(0.5)
        assert 0.4 < time.monotonic() - t0 < 2.0
        assert s.recv(1) == b""


def test_reload_that_cannot_bind_keeps_old_config(servers):
    e, port = servers.engine(respond("still here"))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        cfg = with_listen(respond("never"), port)
        cfg["apps"]["http"]["servers"]["srv0"]["listen"].append(f"127.0.0.1:{taken}")
        with pytest.raises(engine_mod.EngineError, match=f"listening on tcp/127.0.0.1:{taken}"):
            e.reload(json.dumps(cfg))
    assert e.listen_addresses() == [f"127.0.0.1:{port}"]
    assert exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").data.endswith(b"still here")


def test_start_twice_is_an_error(servers):
    e, _ = servers.engine(respond("x"))
    with pytest.raises(engine_mod.EngineError, match="already started"):
        e.start()
