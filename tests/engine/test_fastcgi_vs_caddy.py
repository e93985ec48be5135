"""The FastCGI transport against the reference Caddy: a php-fpm pool of the test's own
(Debian's php-fpm, on a loopback port) behind `php_fastcgi` and behind a raw
`reverse_proxy { transport fastcgi }`, both adapted from Caddyfiles by zeroserve; every
request goes to Caddy and to the engine, and the responses must agree on the status line,
the header fields (Date and Server aside, in order) and the decoded body. The PHP scripts
echo what they were given (the CGI environment and the body), so the comparison covers the
parameters Caddy sends as much as the response it copies back."""

from __future__ import annotations

import gzip
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import php_fpm
from tests.engine.wire import exchange
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
