"""Load balancing against the reference Caddy: three local upstreams that answer with their
name, one `reverse_proxy` per selection policy, and the same requests to Caddy and to the
engine must reach the same upstream (hash policies), in the same order (round robins), with
the same sticky cookie."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.engine.conftest import server_config
from tests.support import QuietHandler


class _Echo(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.reply(200, body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[list[str]]:
    """Dial addresses of three running upstreams named a, b, c."""
    started = []
    for name in "abc":
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        srv.name = name  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
    yield [f"127.0.0.1:{s.server_address[1]}" for s in started]
    for srv in started:
        srv.shutdown()
        srv.server_close()


def proxy(dials: list[str], policy: dict) -> dict:
    handler = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": d} for d in dials],
        "load_balancing": {"selection_policy": policy},
    }
    return server_config([{"handle": [handler]}])


def fetch(
    port: int, path: str = "/", headers: dict | None = None, source: str = "127.0.0.1"
) -> tuple[str, str | None]:
    """The upstream that answered, and the Set-Cookie header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": "t", **(headers or {})})
        resp = conn.getresponse()
        return resp.read().decode(), resp.getheader("Set-Cookie")
    finally:
        conn.close()


def both(servers, config: dict, requests: list[dict]) -> tuple[list, list]:
    caddy, engine = servers.ports(config)
    return [fetch(caddy, **r) for r in requests], [fetch(engine, **r) for r in requests]


HASHED = [
    ({"policy": "uri_hash"}, [{"path": f"/item/{i}?v={i * 7}"} for i in range(24)]),
    (
        {"policy": "header", "field": "X-User"},
        [{"headers": {"X-User": f"user{i}"}} for i in range(24)] + [{"headers": {}}],
    ),
    (
        {"policy": "header", "field": "Host"},
        [{"headers": {"Host": f"h{i}.test"}} for i in range(12)],
    ),
    (
        {"policy": "query", "key": "id"},
        [{"path": f"/?id={i}&id=x{i}"} for i in range(24)],
    ),
    ({"policy": "ip_hash"}, [{"source": f"127.0.0.{i}"} for i in range(1, 25)]),
    ({"policy": "client_ip_hash"}, [{"source": f"127.0.1.{i}"} for i in range(1, 25)]),
]


@pytest.mark.parametrize(
    ("policy", "requests"), HASHED, ids=[f"{p['policy']}-{i}" for i, (p, _) in enumerate(HASHED)]
)
def test_hash_policies_pick_caddys_upstream(servers, upstreams, policy, requests):
    if policy.get("field") == "X-User":
        # A request without the header falls back to random: compare only the hashed ones.
        policy = {**policy, "fallback": {"policy": "first"}}
    caddy, ours = both(servers, proxy(upstreams, policy), requests)
    assert ours == caddy
    assert len({name for name, _ in caddy}) > 1, "the keys spread over several upstreams"


@pytest.mark.parametrize(
    "policy",
    [
        {"policy": "round_robin"},
        {"policy": "weighted_round_robin", "weights": [3, 0, 2]},
        {"policy": "first"},
    ],
    ids=lambda p: p["policy"],
)
def test_ordered_policies_follow_caddys_sequence(servers, upstreams, policy):
    caddy, ours = both(servers, proxy(upstreams, policy), [{}] * 10)
    assert ours == caddy


def test_cookie_policy_sets_and_honours_caddys_cookie(servers, upstreams):
    policy = {"policy": "cookie", "name": "sticky", "secret": "s3cret", "max_age": "1h"}
    policy["fallback"] = {"policy": "round_robin"}
    caddy_port, engine_port = servers.ports(proxy(upstreams, policy))
    for port in (caddy_port, engine_port):
        # No cookie: the fallback picks, and the response carries the sticky cookie.
        fresh = [fetch(port) for _ in range(3)]
        assert all(cookie for _, cookie in fresh)
        # Sending that cookie back sticks to its upstream, with no new cookie.
        for name, cookie in fresh:
            value = cookie.split(";")[0]
            assert fetch(port, headers={"Cookie": f"other=1; {value}"}) == (name, None)
    caddy = [fetch(caddy_port) for _ in range(3)]
    ours = [fetch(engine_port) for _ in range(3)]
    assert ours == caddy


class _Health(QuietHandler):
    """Answers `/health` with the status `server.verdict(n)` gives for its n-th check, and
    anything else with the server's name."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        srv = self.server
        if self.path == "/health":
            with srv.lock:  # type: ignore[attr-defined]
                srv.checks += 1  # type: ignore[attr-defined]
                status, body = srv.verdict(srv.checks)  # type: ignore[attr-defined]
        else:
            status, body = 200, srv.name  # type: ignore[attr-defined]
        data = body.encode()
        self.reply(status, data, [("Location", "/elsewhere")] if 300 <= status < 400 else [])


def health_upstreams(verdicts: dict) -> tuple[list[str], list[ThreadingHTTPServer]]:
    started = []
    for name, verdict in verdicts.items():
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
        srv.name, srv.verdict, srv.checks, srv.lock = name, verdict, 0, threading.Lock()  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
    return [f"127.0.0.1:{s.server_address[1]}" for s in started], started


ACTIVE = [
    # a fails every check: it is taken out and b answers.
    ("down", {"a": lambda n: (503, ""), "b": lambda n: (200, "")}, {}),
    # a passes on status but not on the body regexp.
    ("body", {"a": lambda n: (200, "sick"), "b": lambda n: (200, "ok")}, {"expect_body": "^ok$"}),
    # a answers its checks with a redirect: not 2xx, so a check failure...
    ("redirect", {"a": lambda n: (302, ""), "b": lambda n: (200, "")}, {}),
    # ...unless redirects are followed (to a page that answers 200).
    (
        "follow",
        {"a": lambda n: (302, ""), "b": lambda n: (200, "")},
        {"follow_redirects": True},
    ),
    # a alternates fail/pass: Caddy counts failures since the last change, not consecutive
    # ones, so with fails=2 a flaps and b gets some requests.
    (
        "alternating",
        {"a": lambda n: (503 if n % 2 else 200, ""), "b": lambda n: (200, "")},
        {"fails": 2},
    ),
]


@pytest.mark.parametrize(("verdicts", "extra"), [a[1:] for a in ACTIVE], ids=[a[0] for a in ACTIVE])
def test_active_health_checks_steer_like_caddy(servers, verdicts, extra):
    answers = {}
    for who in ("caddy", "engine"):
        dials, started = health_upstreams(verdicts)
        try:
            config = proxy(dials, {"policy": "first"})
            handler = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
            active = {"uri": "/health", "interval": "50ms", "timeout": "1s", **extra}
            handler["health_checks"] = {"active": active}
            port = servers.caddy(config) if who == "caddy" else servers.engine(config)[1]
            time.sleep(0.4)
            seen = set()
            for _ in range(40):
                seen.add(fetch(port)[0])
                time.sleep(0.02)
            answers[who] = seen
        finally:
            for srv in started:
                srv.shutdown()
                srv.server_close()
    assert answers["engine"] == answers["caddy"]


@pytest.fixture
def broken_upstream() -> Iterator[str]:
    """An upstream that accepts connections and closes them at once: a transport error
    after the request may have been sent."""
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    yield f"127.0.0.1:{lsock.getsockname()[1]}"
    stop.set()
    lsock.close()


def status_of(port: int, method: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        # An empty body: the rules under test are about the method, not about replaying a body.
        conn.request(method, "/", body=b"" if method == "POST" else None, headers={"Host": "t"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


TRANSPORT = "{http.reverse_proxy.is_transport_error} == true"


def test_retries_follow_caddys_rules(servers, upstreams, broken_upstream):
    from tests.support import free_port

    dead = f"127.0.0.1:{free_port()}"
    results = {}
    for name, failing, lb_extra in [
        ("transport", broken_upstream, {}),
        ("dial", dead, {}),
        ("transport+match", broken_upstream, {"retry_match": [{"method": ["POST"]}]}),
        ("transport+expr", broken_upstream, {"retry_match": [{"expression": TRANSPORT}]}),
    ]:
        for method in ("GET", "POST"):
            # A fresh round_robin tries index 1 (the failing upstream) first, then index 0.
            config = proxy([upstreams[0], failing], {"policy": "round_robin"})
            handler = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
            handler["load_balancing"].update({"retries": 1, **lb_extra})
            caddy, engine = servers.ports(config)
            results[(name, method)] = (status_of(caddy, method), status_of(engine, method))
    assert {k: v[1] for k, v in results.items()} == {k: v[0] for k, v in results.items()}
    # Caddy's rules: a failed dial is always retried; after the request went out, GET is,
    # other methods only when retry_match matches (here by method or by transport error).
    assert {k: v[0] for k, v in results.items()} == {
        ("transport", "GET"): 200,
        ("transport", "POST"): 502,
        ("dial", "GET"): 200,
        ("dial", "POST"): 200,
        ("transport+match", "GET"): 502,
        ("transport+match", "POST"): 200,
        ("transport+expr", "GET"): 200,
        ("transport+expr", "POST"): 200,
    }


class _Slow(_Echo):
    def do_GET(self) -> None:
        time.sleep(0.4)
        super().do_GET()


def test_max_requests_and_least_conn_under_load_like_caddy(servers):
    """Three requests at once to two upstreams that each take 400ms: with max_requests 1 the
    third finds none available (503); least_conn sends the second to the idle upstream."""
    from concurrent.futures import ThreadPoolExecutor

    started = []
    for name in "xy":
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
        srv.name = name  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
    dials = [f"127.0.0.1:{s.server_address[1]}" for s in started]
    try:
        outcomes = {}
        for case, policy, max_requests in [("full", "first", 1), ("least_conn", "least_conn", 0)]:
            config = proxy(dials, {"policy": policy})
            handler = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
            if max_requests:
                for u in handler["upstreams"]:
                    u["max_requests"] = max_requests
            caddy, engine = servers.ports(config)
            for who, port in (("caddy", caddy), ("engine", engine)):
                n = 3 if case == "full" else 2
                with ThreadPoolExecutor(n) as pool:
                    futures = []
                    for _ in range(n):
                        futures.append(pool.submit(status_of_get, port))
                        time.sleep(0.05)
                    outcomes[(case, who)] = sorted(f.result() for f in futures)
        assert outcomes[("full", "caddy")] == [(200, "x"), (200, "y"), (503, "")]
        assert outcomes[("least_conn", "caddy")] == [(200, "x"), (200, "y")]
        for case in ("full", "least_conn"):
            assert outcomes[(case, "engine")] == outcomes[(case, "caddy")]
    finally:
        for srv in started:
            srv.shutdown()
            srv.server_close()


def status_of_get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "t"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class _Status(QuietHandler):
    """Answers with the server's status and name."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.reply(self.server.status, body, [("X-From", self.server.name)])  # type: ignore[attr-defined]


def test_response_retries_like_caddy(servers):
    """A response that a retry_match expression matches is retried on the next upstream."""
    started = []
    for name, status in (("good", 200), ("busy", 503)):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
        srv.name, srv.status = name, status  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
    good, busy = (f"127.0.0.1:{s.server_address[1]}" for s in started)
    expression = "{http.reverse_proxy.status_code} == 503"
    try:
        # round_robin starts at index 1: the busy upstream, then the good one.
        config = proxy([good, busy], {"policy": "round_robin"})
        handler = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
        handler["load_balancing"].update(
            {"retries": 1, "retry_match": [{"expression": expression}]}
        )
        caddy, engine = servers.ports(config)
        assert status_of_get(caddy) == (200, "good")
        assert status_of_get(engine) == (200, "good")
    finally:
        for srv in started:
            srv.shutdown()
            srv.server_close()


class _Sink(QuietHandler):
    """Answers a POST with what its body was."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = f"{self.headers.get('Content-Length')}:{len(data)}".encode()
        self.reply(200, body)


@pytest.fixture
def reading_upstream() -> Iterator[str]:
    """An upstream that reads the start of a request, then closes: the first attempt has
    consumed the body when the transport error comes."""
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)

    def run() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    yield f"127.0.0.1:{lsock.getsockname()[1]}"
    lsock.close()


def post_status(port: int, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/", body=body, headers={"Host": "t"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_retry_resends_only_a_buffered_body_like_caddy(servers, reading_upstream):
    """A POST retried after a transport error: a body read by the failed attempt is gone
    (Go's closed body, 502) unless request_buffers held all of it, which is sent again."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    good = f"127.0.0.1:{sink.server_address[1]}"
    big = b"x" * 200_000
    results = {}
    try:
        for buffers, body in [
            (0, big),
            (1_000_000, big),
            (-1, big),
            (1_000_000, b"hello"),
            (100, big),
        ]:
            config = proxy([good, reading_upstream], {"policy": "round_robin"})
            handler = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
            handler["load_balancing"].update({"retries": 1, "retry_match": [{"method": ["POST"]}]})
            if buffers:
                handler["request_buffers"] = buffers
            caddy, engine = servers.ports(config)
            results[(buffers, len(body))] = (post_status(caddy, body), post_status(engine, body))
    finally:
        sink.shutdown()
        sink.server_close()
    assert {k: v[1] for k, v in results.items()} == {k: v[0] for k, v in results.items()}
    assert {k: v[0][0] for k, v in results.items()} == {
        (0, 200_000): 502,
        (1_000_000, 200_000): 200,
        (-1, 200_000): 200,
        (1_000_000, 5): 200,
        (100, 200_000): 502,
    }
    assert results[(-1, 200_000)][0][1] == b"200000:200000"


def late_body_post(port: int, body: bytes) -> int:
    """A POST whose body follows its head late, after the upstream has already gone."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        time.sleep(0.3)
        try:
            sock.sendall(body)
        except OSError:
            pass
        return int(sock.recv(65536).split(b" ", 2)[1])


def test_retry_fails_once_an_attempt_began_even_before_any_body_arrived(servers, reading_upstream):
    """Go closes the client's body as soon as an attempt on a live connection starts
    writing, whether or not any of it had arrived: the retry is a 502 in both."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        config = proxy([f"127.0.0.1:{sink.server_address[1]}", reading_upstream], {})
        config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]["load_balancing"] = {
            "selection_policy": {"policy": "round_robin"},
            "retries": 1,
            "retry_match": [{"method": ["POST"]}],
        }
        caddy, engine = servers.ports(config)
        assert [late_body_post(p, b"x" * 1000) for p in (caddy, engine)] == [502, 502]
    finally:
        sink.shutdown()
        sink.server_close()


def test_response_retries_used_up_answer_an_error_like_caddy(servers):
    """A response retry_match still matches when no retry is left: Caddy answers its status
    as an error (empty body, no upstream headers), not the upstream's response."""
    started = []
    for name, status in (("busy", 503), ("broken", 500)):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
        srv.name, srv.status = name, status  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
    busy, broken = (f"127.0.0.1:{s.server_address[1]}" for s in started)
    expression = "{http.reverse_proxy.status_code} == 503"

    def answer(port: int) -> tuple:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": "t"})
            resp = conn.getresponse()
            fields = sorted((k, v) for k, v in resp.getheaders() if k != "Date")
            return resp.status, resp.read(), fields
        finally:
            conn.close()

    results = {}
    try:
        for name, dials, lb_extra in [
            ("retries used up", [busy], {"retries": 2}),
            ("no retries", [busy], {}),
            ("try_duration", [busy], {"try_duration": "200ms"}),
            ("last one unmatched", [broken, busy], {"retries": 1}),
        ]:
            config = proxy(dials, {"policy": "round_robin"})
            handler = config["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
            handler["load_balancing"].update(
                {**lb_extra, "retry_match": [{"expression": expression}]}
            )
            caddy, engine = servers.ports(config)
            results[name] = (answer(caddy), answer(engine))
    finally:
        for srv in started:
            srv.shutdown()
            srv.server_close()
    assert {k: v[1] for k, v in results.items()} == {k: v[0] for k, v in results.items()}
    assert results["retries used up"][0][:2] == (503, b"")
    assert results["last one unmatched"][0][:2] == (500, b"broken")
