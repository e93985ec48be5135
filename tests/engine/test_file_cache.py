"""file_server's contents cache and encode's compressed-body memo: a settled file (changed
over a second ago) is served from memory, and the response is the one Caddy (which caches
nothing) gives; a file rewritten in place, even with the same size right after it was cached,
or replaced by another, is served with its new bytes at once."""

from __future__ import annotations

import gzip
import http.client
import os
import time
from pathlib import Path

from tests.engine.conftest import Pair, server_config

SIZE = 300 * 1024  # over the 256 KiB the worker streams in chunks


def get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "localhost", **headers})
        resp = conn.getresponse()
        body = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders() if k.lower() != "date"}
    finally:
        conn.close()
    if hdrs.get("content-encoding") == "gzip":
        # Two correct encoders differ in bytes, so only the decoded body and the presence
        # of a length compare.
        body = gzip.decompress(body)
        if "content-length" in hdrs:
            hdrs["content-length"] = "(compressed)"
    return resp.status, hdrs, body


def site(root: Path) -> dict:
    return server_config(
        [
            {
                "handle": [
                    {"handler": "encode", "encodings": {"gzip": {}}},
                    {"handler": "file_server", "root": str(root)},
                ]
            }
        ]
    )


ASKS = [
    ("/page.html", {}),
    ("/page.html", {"Accept-Encoding": "gzip"}),
    ("/page.html", {"Range": "bytes=100-199"}),
    ("/data.bin", {"Accept-Encoding": "gzip"}),
]


def test_cached_file_answers_like_caddy_and_never_stale(servers: Pair, tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    page, data = root / "page.html", root / "data.bin"
    page.write_bytes(b"<p>old</p>\n" * (SIZE // 11))
    data.write_bytes(os.urandom(2048))
    time.sleep(1.5)  # settled: the first request caches them
    caddy, engine = servers.ports(site(root))

    def check(contents: dict[str, bytes]) -> None:
        for path, headers in ASKS:
            expected = get(caddy, path, headers)
            for attempt in ("miss or hit", "hit"):
                got = get(engine, path, headers)
                assert got == expected, (path, headers, attempt)
            whole = contents[path]
            assert expected[2] == (whole[100:200] if "Range" in headers else whole)

    def contents() -> dict[str, bytes]:
        return {"/page.html": page.read_bytes(), "/data.bin": data.read_bytes()}

    check(contents())
    # Same size, same inode: only the change times tell the file changed, at once (not
    # settled yet) and once it has settled again.
    page.write_bytes(b"<p>new</p>\n" * (SIZE // 11))
    check(contents())
    time.sleep(1.5)
    check(contents())
    replacement = root / "next.bin"
    replacement.write_bytes(os.urandom(2048))
    os.replace(replacement, data)
    check(contents())


def test_connection_stays_open_after_a_sent_file(servers: Pair, tmp_path: Path) -> None:
    """A body over 256 KiB goes out by sendfile after the head; the connection then serves
    the next request, as Caddy's does."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(SIZE))
    _, port = servers.engine(
        server_config([{"handle": [{"handler": "file_server", "root": str(root)}]}])
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/big.bin", headers={"Host": "localhost"})
            resp = conn.getresponse()
            assert resp.read() == (root / "big.bin").read_bytes()
            assert not resp.will_close
        assert conn.sock is not None
    finally:
        conn.close()
