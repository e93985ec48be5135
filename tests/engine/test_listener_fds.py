"""Engine.listener_fds(): the workers' listening sockets, for sk_lookup dispatch."""

from __future__ import annotations

import json
import socket

from tests.engine.conftest import server_config, with_listen
from tests.support import free_port


def respond(body: str) -> dict:
    return server_config([{"handle": [{"handler": "static_response", "body": body}]}])


def bound(fd: int) -> tuple[tuple, int]:
    """(address, SO_ACCEPTCONN) of a socket the engine owns, without taking it over."""
    sock = socket.socket(fileno=fd)
    try:
        return sock.getsockname()[:2], sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    finally:
        sock.detach()


def test_one_listening_socket_per_worker_while_started(servers):
    e, port = servers.engine(respond("x"), workers=3)
    fds = e.listener_fds()
    assert len(set(fds)) == 3
    assert {bound(fd) for fd in fds} == {(("127.0.0.1", port), 1)}
    e.stop()
    assert e.listener_fds() == []


def test_reload_keeps_sockets_of_kept_addresses_and_drops_the_rest(servers):
    e, port = servers.engine(respond("x"), workers=2)
    before = sorted(e.listener_fds())
    e.reload(json.dumps(with_listen(respond("y"), port)))
    assert sorted(e.listener_fds()) == before
    other = free_port()
    e.reload(json.dumps(with_listen(respond("z"), other)))
    assert {bound(fd) for fd in e.listener_fds()} == {(("127.0.0.1", other), 1)}
