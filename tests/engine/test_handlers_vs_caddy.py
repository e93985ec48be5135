"""Handlers, matchers and placeholders compared byte for byte with the reference Caddy on
one JSON config (dates masked): headers (immediate, deferred, require), rewrite, vars, map,
error routes, request and response placeholders, the matcher modules, and file_server on a
scratch directory with fixed modification times (including a 2 MiB file, which the engine
streams from disk rather than reading whole)."""

from __future__ import annotations

import os

import pytest

from tests.engine.conftest import server_config
from tests.engine.wire import H, both_exchanges

MTIME_NS = 1_700_000_000_123_456_789


def routes(root: str) -> list:
    respond = lambda body, **kw: {"handler": "static_response", "body": body, **kw}  # noqa: E731
    return [
        {
            "match": [{"path": ["/hdr"]}],
            "handle": [
                {
                    "handler": "headers",
                    "request": {"set": {"X-In": ["{http.request.uri.query.v}"]}},
                    "response": {"set": {"X-Set": ["a", "b"]}, "add": {"X-Add": ["1"]}},
                },
                {"handler": "headers", "response": {"delete": ["Server"], "deferred": True}},
                {
                    "handler": "headers",
                    "response": {"set": {"X-Only-404": ["yes"]}, "require": {"status_code": [4]}},
                },
                respond("in={http.request.header.X-In} out={http.response.header.X-Set}"),
            ],
        },
        {
            "match": [{"path": ["/old/*"]}],
            "handle": [
                {"handler": "rewrite", "strip_path_prefix": "/old"},
                {
                    "handler": "rewrite",
                    "uri": "/new{http.request.uri.path}?{http.request.uri.query}&r=1",
                },
            ],
        },
        {
            "match": [{"path": ["/new/*"]}],
            "handle": [
                respond(
                    "uri={http.request.uri} orig={http.request.orig_uri} "
                    "file={http.request.uri.path.file} ext={http.request.uri.path.file.ext}"
                ),
            ],
        },
        {
            "match": [{"path_regexp": {"name": "pr", "pattern": "^/re/(?P<id>[0-9]+)$"}}],
            "handle": [respond("id={http.regexp.pr.id} one={http.regexp.1}")],
        },
        {
            "match": [{"header": {"X-Mode": ["te*"]}, "query": {"q": ["*"]}}],
            "handle": [respond("header+query")],
        },
        {
            # The intercepting routes answer instead of a file body large enough to stream.
            "match": [{"path": ["/intercept/*"]}],
            "handle": [
                {"handler": "rewrite", "strip_path_prefix": "/intercept"},
                {
                    "handler": "intercept",
                    "handle_response": [
                        {
                            "match": {"status_code": [200]},
                            "routes": [{"handle": [respond("took {http.intercept.status_code}")]}],
                        }
                    ],
                },
                {"handler": "file_server", "root": root},
            ],
        },
        {"match": [{"not": [{"method": ["GET", "HEAD"]}]}], "handle": [respond("not get")]},
        {
            "match": [{"remote_ip": {"ranges": ["127.0.0.0/8"]}}, {"protocol": "http/1.0"}],
            "handle": [
                {"handler": "vars", "v": "{http.request.method}", "n": 5},
                {
                    "handler": "map",
                    "source": "{http.request.uri.path}",
                    "destinations": ["{mapped}"],
                    "mappings": [
                        {"input": "/map/a", "outputs": ["A"]},
                        {"input_regexp": "^/map/(.+)$", "outputs": ["re-$1"]},
                    ],
                    "defaults": ["dflt"],
                },
                {
                    "handler": "subroute",
                    "routes": [
                        {
                            "match": [{"vars": {"v": ["GET"]}, "path": ["/vars"]}],
                            "handle": [
                                respond("vars {http.vars.v} {http.vars.n} {http.vars.client_ip}")
                            ],
                        },
                        {"match": [{"path": ["/map/*"]}], "handle": [respond("map {mapped}")]},
                        {
                            "match": [{"path": ["/fail"]}],
                            "handle": [
                                {
                                    "handler": "error",
                                    "error": "broke {http.request.uri.path}",
                                    "status_code": 418,
                                }
                            ],
                        },
                        {
                            "match": [{"path": ["/files/*"]}],
                            "handle": [
                                {"handler": "rewrite", "strip_path_prefix": "/files"},
                                {"handler": "file_server", "root": root, "hide": [".secret"]},
                            ],
                        },
                    ],
                },
            ],
        },
    ]


ERRORS = {
    "routes": [
        {
            "match": [{"path": ["/fail"]}],
            "handle": [
                {
                    "handler": "static_response",
                    "body": "{http.error.status_code} {http.error.status_text}: "
                    "{http.error.message}",
                },
            ],
        },
    ]
}


CASES = {
    "header_ops": b"GET /hdr?v=7 HTTP/1.1\r\n" + H + b"\r\n",
    "rewrite_chain": b"GET /old/dir/a.tar.gz?x=1 HTTP/1.1\r\n" + H + b"\r\n",
    "path_regexp_captures": b"GET /re/42 HTTP/1.1\r\n" + H + b"\r\n",
    "header_and_query": b"GET /x?q=1 HTTP/1.1\r\n" + H + b"X-Mode: test\r\n\r\n",
    "header_and_query_miss": b"GET /x HTTP/1.1\r\n" + H + b"X-Mode: test\r\n\r\n",
    "not_matcher": b"DELETE /x HTTP/1.1\r\n" + H + b"\r\n",
    "vars_and_client_ip": b"GET /vars HTTP/1.1\r\n" + H + b"\r\n",
    "map_exact": b"GET /map/a HTTP/1.1\r\n" + H + b"\r\n",
    "map_regexp": b"GET /map/zz HTTP/1.1\r\n" + H + b"\r\n",
    "error_route": b"GET /fail HTTP/1.1\r\n" + H + b"\r\n",
    "file": b"GET /files/hello.txt HTTP/1.1\r\n" + H + b"\r\n",
    "file_head": b"HEAD /files/hello.txt HTTP/1.1\r\n" + H + b"\r\n",
    "file_not_modified": (
        b"GET /files/hello.txt HTTP/1.1\r\n"
        + H
        + b"If-Modified-Since: Wed, 15 Nov 2023 00:00:00 GMT\r\n\r\n"
    ),
    "file_range": b"GET /files/hello.txt HTTP/1.1\r\n" + H + b"Range: bytes=2-4\r\n\r\n",
    "file_bad_range": b"GET /files/hello.txt HTTP/1.1\r\n" + H + b"Range: bytes=99-\r\n\r\n",
    "file_index": b"GET /files/d/ HTTP/1.1\r\n" + H + b"\r\n",
    "file_dir_redirect": b"GET /files/d?k=v HTTP/1.1\r\n" + H + b"\r\n",
    "file_hidden": b"GET /files/.secret HTTP/1.1\r\n" + H + b"\r\n",
    "file_missing": b"GET /files/nope.css HTTP/1.1\r\n" + H + b"\r\n",
    "file_post": b"POST /files/hello.txt HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
    "file_big_chunked": b"GET /files/big.js HTTP/1.1\r\n" + H + b"\r\n",
    "file_streamed_then_pipelined": (
        b"GET /files/large.bin HTTP/1.1\r\n" + H + b"\r\n"
        b"GET /files/hello.txt HTTP/1.1\r\n" + H + b"\r\n"
    ),
    "file_streamed_range": (
        b"GET /files/large.bin HTTP/1.1\r\n" + H + b"Range: bytes=1000000-1900000\r\n\r\n"
    ),
    "file_streamed_head": b"HEAD /files/large.bin HTTP/1.1\r\n" + H + b"\r\n",
    "file_streamed_intercepted": (
        b"GET /intercept/large.bin HTTP/1.1\r\n" + H + b"\r\n"
        b"GET /intercept/hello.txt HTTP/1.1\r\n" + H + b"\r\n"
    ),
}


@pytest.fixture(scope="module")
def ports(module_servers, tmp_path_factory) -> tuple[int, int]:
    root = tmp_path_factory.mktemp("www")
    (root / "d").mkdir()
    files = {
        "hello.txt": b"hello world\n",
        "d/index.html": b"<p>index</p>\n",
        ".secret": b"no\n",
        "big.js": b"x" * 5000,
        "large.bin": bytes(range(256)) * 8192,
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
        os.utime(root / name, ns=(MTIME_NS, MTIME_NS))
    config = server_config(routes(str(root)), errors=ERRORS)
    return module_servers.ports(config)


@pytest.mark.parametrize("name", list(CASES))
def test_same_bytes_as_caddy(ports, name):
    got, want = both_exchanges(ports, CASES[name])
    assert got == want
