"""Access logs: the engine's `handled request` lines against the real Caddy's, from the same
Caddyfile, compared field by field (order of keys included) except the clock, the client's
port and the order of header names (Caddy prints a Go map)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.engine.wire import exchange
from zeroserve.adapt import adapt_caddyfile

LOGFILE = "/LOGFILE/access.log"

SITE = """
{{
{options}
}}
http://a.test {{
	log {{
		output file {logfile}
	}}
	log_skip /skip
	log_append /tagged late {{http.request.uri.path}}
	log_append /tagged <early {{http.request.method}}
	respond /404 "nf" 404
	respond /500 "boom" 500
	error /e403 "nope" 403
	respond "hello {{http.request.uri.path}}"
}}
"""

REQUESTS = [
    b"GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nCookie: a=b\r\nAuthorization: Basic eA==\r\n"
    b"X-Two: 1\r\nX-Two: 2\r\nUser-Agent: t/1\r\n\r\n",
    b"GET /404 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"GET /500 HTTP/1.1\r\nHost: a.test:80\r\n\r\n",
    b"GET /e403 HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"POST /post HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\nabcdef",
    b"GET /skip HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b"GET /tagged HTTP/1.1\r\nHost: a.test\r\n\r\n",
    b'GET /q%20x?a="b" HTTP/1.0\r\nHost: a.test\r\nX-Esc: tab\there \\ "q"\r\n\r\n',
]


def config(logfile: Path, options: str = "") -> dict:
    body = SITE.format(options=options, logfile=LOGFILE).encode()
    text = json.dumps(adapt_caddyfile(body).config).replace(LOGFILE, str(logfile))
    return json.loads(text)


def read_lines(path: Path, count: int, timeout: float = 5.0) -> list[dict]:
    """The first `count` JSON lines of `path`, waiting for the logger to write them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.02)


def normalized(entry: dict) -> dict:
    """An entry less what differs between two runs, with its key order kept visible."""
    out = dict(entry)
    for key in ("ts", "duration"):
        assert isinstance(out.pop(key), float)
    request = dict(out["request"])
    assert request.pop("remote_port").isdigit()
    out["request"] = request
    out["keys"] = list(entry)
    out["request_keys"] = list(entry["request"])
    return out


def run_both(servers, tmp_path: Path, options: str = "") -> tuple[list[dict], list[dict]]:
    caddy_log, engine_log = tmp_path / "caddy.log", tmp_path / "engine.log"
    caddy_port = servers.caddy(config(caddy_log, options))
    _, engine_port = servers.engine(config(engine_log, options))
    for port in (caddy_port, engine_port):
        for req in REQUESTS:
            exchange(port, req, quiet=0.1)
    expected = len(REQUESTS) - 1  # /skip is not logged
    return read_lines(caddy_log, expected), read_lines(engine_log, expected)


@pytest.mark.parametrize("options", ["", "\tservers {\n\t\tlog_credentials\n\t}"])
def test_lines_match_caddy(servers, tmp_path: Path, options: str) -> None:
    caddy, engine = run_both(servers, tmp_path, options)
    assert len(engine) == len(caddy) == len(REQUESTS) - 1
    for theirs, ours in zip(caddy, engine, strict=True):
        assert normalized(ours) == normalized(theirs)


def test_what_the_lines_say(servers, tmp_path: Path) -> None:
    """The facts the comparison rests on, stated on the engine's own output."""
    log = tmp_path / "engine.log"
    _, port = servers.engine(config(log))
    for req in REQUESTS:
        exchange(port, req, quiet=0.1)
    lines = read_lines(log, len(REQUESTS) - 1)
    by_uri = {e["request"]["uri"]: e for e in lines}
    assert "/skip" not in by_uri
    first = by_uri["/p?q=1"]
    assert first["logger"] == "http.log.access.log0"
    assert first["msg"] == "handled request"
    assert first["request"]["headers"]["Cookie"] == ["REDACTED"]
    assert first["request"]["headers"]["Authorization"] == ["REDACTED"]
    assert first["request"]["headers"]["X-Two"] == ["1", "2"]
    assert (first["status"], first["size"]) == (200, len("hello /p"))
    assert by_uri["/500"]["level"] == "error"
    assert by_uri["/404"]["level"] == "info"
    assert (by_uri["/e403"]["status"], by_uri["/e403"]["size"]) == (403, 0)
    assert list(by_uri["/tagged"])[-2:] == ["early", "late"]
    assert by_uri["/tagged"]["late"] == "/tagged"


def test_nop_skip_hosts_and_level(servers, tmp_path: Path) -> None:
    """Unhandled requests log `NOP` with status 0; skip_hosts match the host without its
    port; a log's level keeps lines below it out."""
    log, errors = tmp_path / "all.log", tmp_path / "errors.log"
    cfg = {
        "logging": {
            "logs": {
                "all": {
                    "writer": {"output": "file", "filename": str(log)},
                    "include": ["http.log.access.all"],
                },
                "errs": {
                    "writer": {"output": "file", "filename": str(errors)},
                    "level": "ERROR",
                    "include": ["http.log.access.all"],
                },
            }
        },
        "apps": {
            "http": {
                "servers": {
                    "srv0": {
                        "routes": [
                            {
                                "match": [{"path": ["/boom"]}],
                                "handle": [{"handler": "static_response", "status_code": 503}],
                            }
                        ],
                        "logs": {"default_logger_name": "all", "skip_hosts": ["quiet.test"]},
                    }
                }
            }
        },
    }
    _, port = servers.engine(cfg)
    for host, path in [("x.test", "/"), ("quiet.test:9", "/"), ("x.test", "/boom")]:
        exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), quiet=0.1)
    lines = read_lines(log, 2)
    assert [(e["msg"], e["status"], e["size"]) for e in lines] == [
        ("NOP", 0, 0),
        ("handled request", 503, 0),
    ]
    assert lines[0]["resp_headers"] == {"Server": ["Caddy"]}
    assert [e["status"] for e in read_lines(errors, 1)] == [503]


def test_unsupported_writer_is_refused(servers) -> None:
    from zeroserve._engine import Engine, EngineError

    cfg = {
        "logging": {"logs": {"n": {"writer": {"output": "net", "address": "127.0.0.1:9"}}}},
        "apps": {"http": {"servers": {"s": {"listen": [":0"]}}}},
    }
    with pytest.raises(EngineError, match="caddy.logging.writers.net"):
        Engine(json.dumps(cfg))


ENCODERS = """
http://a.test {{
	log {{
		output file {console}
		format console
	}}
	respond "hi"
}}
http://b.test {{
	log {{
		output file {filtered}
		format filter {{
			wrap json
			fields {{
				request>headers>User-Agent delete
				request>headers>X-Secret replace hidden
				request>remote_ip ip_mask 16 32
				resp_headers>Server rename Srv
			}}
		}}
	}}
	respond "hi"
}}
"""


def test_console_and_filter_encoders_match_caddy(servers, tmp_path: Path) -> None:
    """`format console` (tab-separated columns, then spaced JSON) and `format filter`."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for who in ("caddy", "engine"):
        console, filtered = tmp_path / f"{who}-console.log", tmp_path / f"{who}-filter.log"
        body = ENCODERS.format(console=LOGFILE, filtered=LOGFILE + ".f").encode()
        text = json.dumps(adapt_caddyfile(body).config)
        cfg = json.loads(text.replace(LOGFILE + ".f", str(filtered)).replace(LOGFILE, str(console)))
        port = servers.caddy(cfg) if who == "caddy" else servers.engine(cfg)[1]
        for host in ("a.test", "b.test"):
            req = f"GET /x HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\nX-Secret: s\r\n\r\n"
            exchange(port, req.encode(), quiet=0.1)
        read_lines(filtered, 1)
        out[who] = (console.read_text().splitlines(), filtered.read_text().splitlines())
    (caddy_console, caddy_filtered), (ours_console, ours_filtered) = out["caddy"], out["engine"]
    assert len(ours_console) == len(caddy_console) == 1
    theirs, ours = caddy_console[0].split("\t"), ours_console[0].split("\t")
    # columns: wall-clock time, coloured level, logger, message, then the fields
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3}", ours[0])
    columns = ["\x1b[34mINFO\x1b[0m", "http.log.access.log0", "handled request"]
    assert ours[1:4] == theirs[1:4] == columns
    assert ", " in ours[4] and '": ' in ours[4]
    # the fields column is zap's spaced JSON: the same entry less level, ts, logger and msg
    assert normalized({"ts": 0.0, **json.loads(ours[4])}) == normalized(
        {"ts": 0.0, **json.loads(theirs[4])}
    )
    assert normalized(json.loads(ours_filtered[0])) == normalized(json.loads(caddy_filtered[0]))
    assert json.loads(ours_filtered[0])["request"]["headers"] == {"X-Secret": "hidden"}


def test_proxied_requests_match_caddy(servers, tmp_path: Path) -> None:
    """A request answered through reverse_proxy reports once, when it ends, with the
    upstream's status, headers and body size, as Caddy logs it."""
    upstream = {
        "apps": {
            "http": {
                "servers": {
                    "up": {
                        "routes": [
                            {
                                "handle": [
                                    {"handler": "headers", "response": {"set": {"X-Up": ["1"]}}},
                                    {
                                        "handler": "static_response",
                                        "status_code": 201,
                                        "body": "hello",
                                    },
                                ]
                            }
                        ]
                    }
                }
            }
        }
    }
    _, up_port = servers.engine(upstream)
    lines, engine = [], None
    for who in ("caddy", "engine"):
        log = tmp_path / f"{who}.log"
        front = {
            "logging": {
                "logs": {
                    "front": {
                        "writer": {"output": "file", "filename": str(log)},
                        "include": ["http.log.access.front"],
                    }
                }
            },
            "apps": {
                "http": {
                    "metrics": {},
                    "servers": {
                        "srv0": {
                            "routes": [
                                {
                                    "handle": [
                                        {
                                            "handler": "reverse_proxy",
                                            "upstreams": [{"dial": f"127.0.0.1:{up_port}"}],
                                        }
                                    ]
                                }
                            ],
                            "logs": {"default_logger_name": "front"},
                        }
                    },
                }
            },
        }
        if who == "caddy":
            port = servers.caddy(front)
        else:
            engine, port = servers.engine(front)
        for req in (
            b"GET /via HTTP/1.1\r\nHost: t\r\n\r\n",
            b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n",
        ):
            assert exchange(port, req, quiet=0.2).data.startswith(b"HTTP/1.1 201 ")
        lines.append([normalized(e) for e in read_lines(log, 2)])
    # the upstream's Date may tick between the two fronts
    for entry in lines[0] + lines[1]:
        entry["resp_headers"] = {k: v for k, v in entry["resp_headers"].items() if k != "Date"}
    assert lines[1] == lines[0]
    assert [e["size"] for e in lines[1]] == [5, 0]
    metrics = engine.metrics()
    assert 'caddy_http_requests_total{handler="reverse_proxy",server="srv0"} 2\n' in metrics


def test_handler_errors_are_logged_like_caddy(servers, tmp_path: Path) -> None:
    """A handler error the server answers itself with 5xx gets Caddy's `http.log.error`
    entry (before the access entry); below 500 it is a debug entry, under an info log
    invisible. Caddy's `err_id` is random and its `err_trace` names Go code: both are left
    out of the comparison (the engine writes them empty)."""
    lines = []
    for who in ("caddy", "engine"):
        log = tmp_path / f"{who}.log"
        cfg = {
            "logging": {
                "logs": {
                    "all": {
                        "writer": {"output": "file", "filename": str(log)},
                        "include": ["http.log.access", "http.log.error"],
                    }
                }
            },
            "apps": {
                "http": {
                    "servers": {
                        "srv0": {
                            "routes": [
                                {
                                    "match": [{"path": ["/e500"]}],
                                    "handle": [
                                        {"handler": "error", "error": "bad", "status_code": 500}
                                    ],
                                },
                                {
                                    "match": [{"path": ["/e403"]}],
                                    "handle": [{"handler": "error", "status_code": 403}],
                                },
                            ],
                            "logs": {},
                        }
                    }
                }
            },
        }
        port = servers.caddy(cfg) if who == "caddy" else servers.engine(cfg)[1]
        for path in ("/e500", "/e403", "/"):
            exchange(port, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode(), quiet=0.1)
        entries = read_lines(log, 4)
        for e in entries:
            if e["logger"] == "http.log.error":
                assert e.pop("err_id") is not None and e.pop("err_trace") is not None
        lines.append([normalized(e) for e in entries])
    assert [(e["logger"], e["msg"]) for e in lines[1]] == [
        ("http.log.error", "bad"),
        ("http.log.access", "handled request"),
        ("http.log.access", "handled request"),
        ("http.log.access", "NOP"),
    ]
    assert lines[1] == lines[0]


SAMPLED = """
http://a.test {{
	log {{
		output file {logfile}
		sampling {{
			interval 30s
			first 3
			thereafter 5
		}}
	}}
	respond "hi"
}}
"""


def test_sampling_keeps_what_caddy_keeps(servers, tmp_path: Path) -> None:
    """`sampling`: the first 3 entries, then every 5th (requests 1-3, 8 and 13 of 14)."""
    kept = []
    for who in ("caddy", "engine"):
        log = tmp_path / f"{who}.log"
        body = SAMPLED.format(logfile=LOGFILE).encode()
        cfg = json.loads(json.dumps(adapt_caddyfile(body).config).replace(LOGFILE, str(log)))
        port = servers.caddy(cfg) if who == "caddy" else servers.engine(cfg)[1]
        for n in range(1, 15):
            exchange(port, f"GET /{n} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode(), quiet=0.05)
        read_lines(log, 5)
        time.sleep(0.2)
        kept.append([e["request"]["uri"] for e in read_lines(log, 5)])
    assert kept[1] == kept[0] == ["/1", "/2", "/3", "/8", "/13"]
