"""The FastCGI transport against the reference Caddy: a php-fpm pool of the test's own
(Debian's php-fpm, on a loopback port) behind `php_fastcgi` and behind a raw
`reverse_proxy { transport fastcgi }`, both adapted from Caddyfiles by zeroserve; every
request goes to Caddy and to the engine, and the responses must agree on the status line,
the header fields (Date and Server aside, in order) and the decoded body. The PHP scripts
echo what they were given (the CGI environment and the body), so the comparison covers the
parameters Caddy sends as much as the response it copies back."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import php_fpm
from tests.engine.wire import DATE, exchange
from tests.support import free_port
from zeroserve.adapt import adapt_caddyfile

SCRIPTS = {
    # the whole CGI environment but what changes per connection or per second
    "env.php": """<?php
        header('Content-Type: text/plain');
        $skip = ['REQUEST_TIME', 'REQUEST_TIME_FLOAT', 'REMOTE_PORT'];
        $keys = array_keys($_SERVER);
        sort($keys);
        foreach ($keys as $k) {
            if (!in_array($k, $skip)) { echo "$k=", $_SERVER[$k], "\\n"; }
        }
        echo 'body=', file_get_contents('php://input'), "\\n";
        """,
    "status.php": """<?php
        http_response_code(404);
        header('X-Custom: yes');
        header('X-Multi: a');
        header('X-Multi: b', false);
        echo "not here\\n";
        """,
    "redir.php": "<?php header('Location: /elsewhere?from=redir');",
    "created.php": "<?php header('Status: 201 Made'); header('Content-Length: 3'); echo 'new';",
    "empty.php": "<?php http_response_code(204);",
    "slow.php": "<?php sleep(1); echo 'late';",
    "big.php": '<?php echo str_repeat("0123456789", 1000);',
    "index.php": '<?php echo "index {$_SERVER["REQUEST_URI"]} {$_SERVER["SCRIPT_NAME"]}\\n";',
    "dir/index.php": '<?php echo "dir index ", $_SERVER["PATH_INFO"] ?? "", "\\n";',
    # php-fpm sends what error_log() says as FCGI_STDERR (its default fastcgi.logging)
    "stderr.php": """<?php
        error_log("first");
        http_response_code((int)($_GET['code'] ?? 200));
        error_log("second \\"q\\" \\x01 \\xff\\xfe \\u{e9}");
        echo "logged\\n";
        """,
    # the body in three writes that reach the proxy 0.8 s apart
    "drip.php": """<?php
        while (ob_get_level()) { ob_end_flush(); }
        header('Content-Type: text/plain');
        echo "a"; flush(); usleep(800000);
        echo "b"; flush(); usleep(800000);
        echo "c";
        """,
}


def start_pool(workdir: Path, listen: int | Path) -> subprocess.Popen:
    if php_fpm.binary() is None:
        pytest.skip("php-fpm is not installed: run `make setup` (Debian's php-fpm)")
    return php_fpm.start(workdir, listen)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """The document root (PHP scripts, a static file) and the port of a running pool."""
    base = tmp_path_factory.mktemp("fastcgi")
    root = base / "www"
    for name, text in SCRIPTS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / "static.txt").write_text("static text next to the scripts\n")
    (base / "link").symlink_to(root)
    port = free_port()
    proc = start_pool(base / "fpm", port)
    yield root, port
    php_fpm.stop(proc)


def config(caddyfile: str) -> dict:
    return adapt_caddyfile(textwrap.dedent(caddyfile).encode()).config


def split(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """Status line (after any 1xx heads), header lines (Date and Server left out) and the
    body, de-chunked."""
    interim = []
    while data.startswith((b"HTTP/1.1 1", b"HTTP/1.0 1")):
        head, _, data = data.partition(b"\r\n\r\n")
        interim.append(head)
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    status = b" | ".join([*interim, status])
    fields = [f for f in lines if not f.lower().startswith((b"date:", b"server:"))]
    if not any(f.lower() == b"transfer-encoding: chunked" for f in fields):
        return status, fields, rest
    body = bytearray()
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return status, fields, bytes(body)
        body += rest[:size]
        rest = rest[size + 2 :]


def compare(ports: tuple[int, int], requests: list[bytes]) -> None:
    caddy_port, engine_port = ports
    for raw in requests:
        want = exchange(caddy_port, raw)
        got = exchange(engine_port, raw)
        assert want.data.startswith(b"HTTP/1.1 "), (raw, want)
        assert split(got.data) == split(want.data), raw


def request(target: str, method: str = "GET", body: bytes | None = None, extra: str = "") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n{extra}"
    if body is not None:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


def chunked(target: str, body: bytes) -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n"
    head += "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(
        f"{len(body[i : i + 1000]):x}\r\n".encode() + body[i : i + 1000] + b"\r\n"
        for i in range(0, len(body), 1000)
    )
    return head.encode() + chunks + b"0\r\n\r\n"


def test_php_fastcgi_like_caddy(servers, site) -> None:
    root, port = site
    cfg = config(
        f"""\
        http:// {{
            root * {root}
            php_fastcgi 127.0.0.1:{port}
            file_server
        }}
        """
    )
    ports = servers.ports(cfg)
    # the scripts run (both sides failing alike would compare equal too)
    assert b"\nSCRIPT_NAME=/env.php\n" in exchange(ports[1], request("/env.php")).data
    compare(
        ports,
        [
            # split_path: SCRIPT_NAME, PATH_INFO, PATH_TRANSLATED, the raw query
            request(
                "/env.php/extra/path?x=1&y=%20z",
                extra="X-Foo: bar\r\nX-Multi: a\r\nX-Multi: b\r\nUser-Agent: t/1\r\n",
            ),
            request("/env.php", "POST", b"a=1&b=2", "Content-Type: application/json\r\n"),
            request("/env.php", "POST", b"x" * 10000),  # longer than request_buffers
            chunked("/env.php", b"chunked body"),
            chunked("/env.php", b"y" * 5000),  # no length learnt: 411
            request("/env.php", "PUT"),
            request("/env.php", "DELETE", b"gone"),
            request("/env.php", "OPTIONS"),
            request("/env.php", "HEAD"),
            request("/status.php"),
            request("/redir.php"),
            request("/created.php"),
            request("/empty.php"),
            request("/big.php"),
            request("/big.php", "HEAD"),
            # index.php fallback through try_files, and a directory's own index
            request("/"),
            request("/nothing/here?q=1"),
            request("/dir"),
            request("/dir?keep=1"),
            request("/dir/"),
            request("/dir/index.php/tail"),
            request("/static.txt"),
            request("/static.txt", "HEAD"),
        ],
    )


def test_transport_fastcgi_options_like_caddy(servers, site) -> None:
    root, port = site
    cfg = config(
        f"""\
        http:// {{
            reverse_proxy 127.0.0.1:{port} {{
                transport fastcgi {{
                    root {root.parent / "link"}
                    resolve_root_symlink
                    env APP_MODE test-{{http.request.uri.query.a}}
                    env REMOTE_USER nobody
                    dial_timeout 2s
                    read_timeout 10s
                    write_timeout 10s
                    capture_stderr
                }}
            }}
        }}
        """
    )
    # Caddy's Caddyfile takes split_path only from php_fastcgi, so it is set in the JSON.
    handler = cfg["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
    handler["transport"]["split_path"] = [".PHP"]
    compare(
        servers.ports(cfg),
        [
            request("/env.php/more?a=1"),
            request("/env.php?a=2", "POST", b"k=v"),
            request("/ENV.php"),  # split case-insensitively, then php-fpm finds no such file
            request("/missing.php"),  # php-fpm's own 404
            request("/dir/index.php"),
        ],
    )


def test_stopped_php_fpm_is_502_like_caddy(servers, tmp_path: Path, site) -> None:
    root, _ = site
    port = free_port()
    proc = start_pool(tmp_path / "fpm", port)
    php_fpm.stop(proc)
    cfg = config(
        f"""\
        http:// {{
            root * {root}
            php_fastcgi 127.0.0.1:{port}
        }}
        """
    )
    ports = servers.ports(cfg)
    compare(ports, [request("/env.php"), request("/", "POST", b"lost")])
    assert exchange(ports[1], request("/env.php")).data.startswith(b"HTTP/1.1 502 ")


def decoded(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """`split`, with a gzip body decompressed and its length left out: Go's compressor and
    the engine's give different bytes for the same content."""
    status, fields, body = split(data)
    if b"Content-Encoding: gzip" not in fields:
        return status, fields, body
    fields = [f for f in fields if not f.startswith(b"Content-Length:")]
    return status, fields, gzip.decompress(body)


def test_encode_http10_and_expect_like_caddy(servers, site) -> None:
    root, port = site
    cfg = config(
        f"""\
        http:// {{
            encode gzip
            root * {root}
            php_fastcgi 127.0.0.1:{port}
        }}
        """
    )
    caddy_port, engine_port = servers.ports(cfg)
    gz = "Accept-Encoding: gzip\r\n"
    for raw in [
        request("/big.php", extra=gz),
        request("/status.php", extra=gz),
        request("/env.php", extra=gz),
        b"GET /env.php/x HTTP/1.0\r\nHost: php.test\r\n\r\n",
        b"GET /big.php HTTP/1.0\r\nHost: php.test\r\n\r\n",
        [
            request("/env.php", "POST", None, "Expect: 100-continue\r\nContent-Length: 5\r\n"),
            b"hello",
        ],
    ]:
        want = exchange(caddy_port, raw).data
        got = exchange(engine_port, raw).data
        assert want.startswith(b"HTTP/1."), (raw, want)
        assert decoded(got) == decoded(want), raw


def test_unix_socket_pool_like_caddy(servers, tmp_path: Path, site) -> None:
    root, _ = site
    sock = tmp_path / "fpm.sock"
    proc = start_pool(tmp_path / "fpm", sock)
    try:
        cfg = config(
            f"""\
            http:// {{
                root * {root}
                php_fastcgi unix/{sock}
            }}
            """
        )
        ports = servers.ports(cfg)
        compare(ports, [request("/env.php/p?u=1", "POST", b"over a unix socket")])
        # the script ran (not a failed dial on both sides)
        assert exchange(ports[1], request("/status.php")).data.startswith(b"HTTP/1.1 404 ")
    finally:
        php_fpm.stop(proc)


def test_read_timeout_is_504_like_caddy(servers, site) -> None:
    root, port = site
    cfg = config(
        f"""\
        http:// {{
            root * {root}
            php_fastcgi 127.0.0.1:{port} {{
                read_timeout 300ms
            }}
        }}
        """
    )
    caddy_port, engine_port = servers.ports(cfg)
    # both answer after the timeout, long after the usual quiet spell
    want = exchange(caddy_port, request("/slow.php"), quiet=2.0).data
    got = exchange(engine_port, request("/slow.php"), quiet=2.0).data
    assert want.startswith(b"HTTP/1.1 504 ")
    assert split(got) == split(want)


def test_handle_response_sees_caddys_status_text(servers, site) -> None:
    root, port = site
    cfg = config(
        f"""\
        http:// {{
            root * {root}
            php_fastcgi 127.0.0.1:{port} {{
                @seen status 2xx 3xx 4xx
                handle_response @seen {{
                    respond "{{rp.status_code}} [{{rp.status_text}}] {{rp.header.X-Custom}}"
                }}
            }}
        }}
        """
    )
    ports = servers.ports(cfg)
    compare(ports, [request("/status.php"), request("/"), request("/redir.php")])
    assert exchange(ports[1], request("/status.php")).data.endswith(b"404 [Not Found] yes")


LOGFILE = "/LOGFILE/fastcgi.log"


def stderr_entries(path: Path, count: int) -> list[bytes]:
    """The log's lines once `count` are written (the engine's logger thread writes in
    batches), and any more that follow within a short while."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_bytes().splitlines()) >= count:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    return path.read_bytes().splitlines() if path.exists() else []


def comparable(line: bytes) -> tuple:
    """An entry without what varies by run (`ts`, the client's port): its keys in order, the
    request's keys in order, the whole entry (env and headers are Go maps, in random order,
    so they compare as dicts) and the `body` field as written, escapes and all."""
    entry = json.loads(line)
    del entry["ts"]
    del entry["request"]["remote_port"]
    del entry["env"]["REMOTE_PORT"]
    return list(entry), list(entry["request"]), entry, line.partition(b',"body":')[2]


@pytest.mark.parametrize("credentials", [False, True])
def test_capture_stderr_is_logged_like_caddy(
    servers, site, tmp_path: Path, credentials: bool
) -> None:
    root, port = site
    options = "servers {\n log_credentials\n}" if credentials else ""
    cfg = config(
        f"""\
        {{
            {options}
            log fcgi {{
                output file {LOGFILE}
                include http.reverse_proxy.transport.fastcgi
            }}
        }}
        http:// {{
            root * {root}
            handle_path /uncaptured/* {{
                php_fastcgi 127.0.0.1:{port}
            }}
            php_fastcgi 127.0.0.1:{port} {{
                capture_stderr
            }}
        }}
        """
    )
    requests = [
        # below 400 at warn, credentials blanked in the request and the environment unless
        # the server logs them
        request("/stderr.php?a=1", extra="Cookie: c=1\r\nAuthorization: Basic eDp5\r\n"),
        request("/stderr.php", "POST", b"k=v"),
        # from 400 at error (the status the script set; HEAD still reads the output)
        request("/stderr.php?code=404"),
        request("/stderr.php?code=503", "HEAD"),
        # nothing on STDERR, or not captured: no entry
        request("/env.php"),
        request("/uncaptured/stderr.php"),
    ]
    caddy_log, engine_log = tmp_path / "caddy.log", tmp_path / "engine.log"
    caddy_port = servers.caddy(json.loads(json.dumps(cfg).replace(LOGFILE, str(caddy_log))))
    _, engine_port = servers.engine(json.loads(json.dumps(cfg).replace(LOGFILE, str(engine_log))))
    for listening in (caddy_port, engine_port):
        for raw in requests:
            assert exchange(listening, raw).data.startswith(b"HTTP/1.1 ")
    want, got = stderr_entries(caddy_log, 4), stderr_entries(engine_log, 4)
    assert len(want) == 4, want
    assert [json.loads(e)["level"] for e in want] == ["warn", "warn", "error", "error"]
    assert (b"REDACTED" in want[0]) != credentials
    assert b"PHP message: first; PHP message: second" in want[0]
    assert [comparable(e) for e in got] == [comparable(e) for e in want]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A FastCGI server that never reads: the kernel completes its connections and queues
    them, and the small receive buffer fills with the first bytes of a request."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        port = free_port()
        s.bind(("127.0.0.1", port))
        s.listen(16)
        yield port


def upload(port: int, size: int) -> tuple[float, bytes]:
    """POST `size` bytes to /env.php from another thread while reading the answer: how long
    the answer took, and what came."""
    head = (
        "POST /env.php HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:

        def send() -> None:
            try:
                s.sendall(head + bytes(size))
            except OSError:
                pass  # the server gave up on the body

        started = time.monotonic()
        threading.Thread(target=send, daemon=True).start()
        s.settimeout(5.0)
        data = bytearray()
        try:
            while chunk := s.recv(65536):
                data += chunk
        except OSError:
            pass
        return time.monotonic() - started, bytes(data)


def test_write_timeout_is_504_like_caddy(servers, silent_port: int) -> None:
    """Caddy's write deadline, set once it has dialed, fails a request body the FastCGI
    server does not take in time."""
    cfg = config(
        f"""\
        http:// {{
            php_fastcgi 127.0.0.1:{silent_port} {{
                write_timeout 500ms
            }}
        }}
        """
    )
    answers = [upload(port, 8 << 20) for port in servers.ports(cfg)]
    (want_time, want), (got_time, got) = answers
    assert want.startswith(b"HTTP/1.1 504 "), want
    assert split(got) == split(want)
    # not before the deadline; the engine's upstream deadlines run on its 250 ms clock (and
    # without one the answer would wait for the client's 5 s)
    assert 0.45 < want_time < 2.0 and 0.45 < got_time < 2.0, answers


def test_read_timeout_covers_the_whole_response_like_caddy(servers, site) -> None:
    """Caddy's read deadline is set once, at the dial: a script that starts answering in
    time but is still writing at the deadline is cut there, what was read goes out (the
    head, and the body so far as one chunk) and the connection closes."""
    root, port = site
    cfg = config(
        f"""\
        http:// {{
            root * {root}
            php_fastcgi 127.0.0.1:{port} {{
                read_timeout 1s
            }}
        }}
        """
    )
    answers = []
    for listening in servers.ports(cfg):
        started = time.monotonic()
        answer = exchange(listening, request("/drip.php"), quiet=2.5)
        answers.append((time.monotonic() - started, answer))
    (want_time, want), (got_time, got) = answers
    assert want.end == "closed" and want.data.endswith(b"\r\n\r\n2\r\nab\r\n"), want
    assert got.end == want.end
    assert DATE.sub(b"", got.data) == DATE.sub(b"", want.data)
    # cut at the deadline (the data says it was not after the script's last write at 1.6 s)
    assert 0.95 < want_time and 0.95 < got_time, answers
