"""HTTP engine: zeroserve vs Caddy on the same Caddyfiles, one run, medians of rounds.

Workloads: `respond "hello"`, also with an access `log` to a file; `redir`; a site with 10
header operations; `file_server` of a 1 KB .png and a 1 MB .jpg; `encode gzip` of a 100 KB
.html file. For each workload and server:

- throughput: `wrk -t1 -c64` for --duration seconds after a 1 s warm-up, once with the
  server free to use its core and once with each server capped at the same 10% of a core
  (cgroup CPU bandwidth), where the server, not the single wrk thread, is the bottleneck;
- server CPU per request: utime+stime of the server process (/proc/PID/stat) over the wrk run,
  divided by the requests wrk completed; in the free run, nginx as a reference too (below),
  and for respond the floor server: the engine's ring layer answering every read with Caddy's
  answer bytes and doing nothing else (appliance/proxy/examples/floor_server.rs);
- latency at a fixed offered rate: `h2load --h1 --rps`, the same rate for both servers (half of
  Caddy's median throughput for that workload, capped), p50/p95/p99 from h2load's
  per-request log; server and h2load under SCHED_RR unless --no-realtime, so that other work
  on a shared machine does not make the tail. Beside them, as a reference the goals are not
  judged against, nginx where it gives the same status and body (respond, file_server 1 KB and
  1 MB) and the floor server on respond (--no-nginx leaves both out), and in every run h2load's
  own CPU time per request (wait4), from which the p95 the client alone allows (the client
  floor) is estimated;
- memory: VmRSS of the server holding 10,000 idle keep-alive connections (each served one
  request first), opened by this script.

Pinning: the server runs on CPU 1 (`taskset -c 1`, one engine worker for zeroserve; Caddy's
Go runtime sizes GOMAXPROCS from the mask, so one P), the load generator and this script on
CPU 0. Before measuring zeroserve on a workload, its response is checked against Caddy's
(status, body, every header but Date); a workload zeroserve does not answer the same way is
reported "not yet served" with the first difference, and not measured.

    python bench/http_bench.py [--rounds 3] [--duration 5] [--latency-duration 5]
                               [--only KEY ...] [--phases PHASE ...] [--no-nginx]
                               [--no-realtime] [--nice N] [--no-doc]

--phases picks among throughput, budget, latency and idle (a partial run needs --no-doc);
latency without throughput first measures Caddy's free req/s alone, for its offered rate.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import math
import os
import random
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from benchlib import (
    LOADGEN_CPU,
    REALTIME,
    BenchError,
    Server,
    build_floor_server,
    command_line,
    cpu_budget,
    cpu_seconds,
    fail,
    floor_config,
    fmt_num,
    fmt_ratio,
    free_port,
    machine_line,
    md_table,
    median,
    nginx_binary,
    nginx_config,
    on_cpu,
    parse_args,
    parse_wrk,
    percentile,
    publish,
    raise_fd_limit,
    ratio,
    require_tools,
    rss_kib,
    run_measured,
    running,
    tool_version,
    zeroserve_binary,
)

SERVERS = ("caddy", "zeroserve")
CONNECTIONS = 64
LATENCY_CLIENTS = 32
P95_GOAL = 0.3
# The nearest rank of p95 among one burst's answers: the answer whose time p95 is, when every
# burst looks alike.
FLOOR_RANK = math.ceil(0.95 * LATENCY_CLIENTS)
PHASES = ("throughput", "budget", "latency", "idle")
RATE_SHARE = 0.5
RATE_CAP = 20_000
IDLE_CONNECTIONS = 10_000
# Each server's share of one core in the equal-budget run: small enough that one wrk thread
# on the other core can keep even the faster server saturated.
BUDGET = 0.10
SATURATED = 0.9
T = TypeVar("T")

GLOBAL = """\
{
	admin off
	auto_https off
	default_bind 127.0.0.1
}
"""

TEN_HEADER_OPS = """\
	header {
		Strict-Transport-Security "max-age=31536000; includeSubDomains"
		X-Content-Type-Options nosniff
		X-Frame-Options DENY
		Referrer-Policy no-referrer
		Cache-Control "public, max-age=60"
		+Vary Accept-Encoding
		+Link "</style.css>; rel=preload; as=style"
		-X-Powered-By
		?X-Default "set if missing"
		X-Bench-Route hello
	}
	respond "hello"
"""


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    site: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    # The same answer (status and body) from nginx's server block, for the latency
    # reference; None where nginx cannot give the same body.
    nginx: str | None = None
    # Whether the floor server (appliance/proxy/examples/floor_server.rs, sending Caddy's
    # answer bytes and doing nothing else) runs beside the references in the free throughput
    # run and the latency phase.
    floor: bool = False


# nginx's usual static-file setting: sendfile(2) from the page cache. Not tcp_nopush: with
# it (TCP_CORK), some 1 MB answers waited tens of ms more, which is no floor.
NGINX_COMMON = "    sendfile on;\n"


def workloads(www: Path) -> list[Workload]:
    files = f"\troot * {www}\n\tfile_server\n"
    nginx_files = (
        NGINX_COMMON
        + f"    root {www};\n    types {{ image/png png; image/jpeg jpg; text/html html; }}\n"
    )
    nginx_hello = (
        NGINX_COMMON
        + '    default_type "text/plain; charset=utf-8";\n    location / { return 200 "hello"; }\n'
    )
    gzip_hdr = (("Accept-Encoding", "gzip"),)
    return [
        Workload(
            "respond",
            '`respond "hello"`',
            '\trespond "hello"\n',
            "/",
            nginx=nginx_hello,
            floor=True,
        ),
        Workload(
            "respond_log",
            '`respond "hello"` + `log` to a file',
            f'\tlog {{\n\t\toutput file {www.parent / "access.log"}\n\t}}\n\trespond "hello"\n',
            "/",
        ),
        Workload(
            "redir",
            "`redir https://example.com{uri} 308`",
            "\tredir https://example.com{uri} 308\n",
            "/some/page?id=42",
        ),
        Workload("headers", "10 `header` operations + respond", TEN_HEADER_OPS, "/"),
        Workload("file_1k", "`file_server` 1 KB .png", files, "/1k.png", nginx=nginx_files),
        Workload("file_1m", "`file_server` 1 MB .jpg", files, "/1m.jpg", nginx=nginx_files),
        Workload(
            "gzip_100k",
            "`encode gzip` + `file_server` 100 KB .html",
            "\tencode gzip\n" + files,
            "/100k.html",
            gzip_hdr,
        ),
    ]


def make_files(www: Path) -> None:
    rng = random.Random(20251127)
    www.mkdir(parents=True, exist_ok=True)
    (www / "1k.png").write_bytes(rng.randbytes(1024))
    (www / "1m.jpg").write_bytes(rng.randbytes(1024 * 1024))
    # Paragraphs of words from a small vocabulary compress about as well as real HTML does.
    # The file types (.png, .jpg, .html) are ones Go's built-in MIME table knows, so the
    # Content-Type does not depend on the machine's mime.types.
    vocab = [
        w * rng.randint(1, 3)
        for w in (
            "edge",
            "serve",
            "caddy",
            "route",
            "header",
            "file",
            "kernel",
            "ring",
            "packet",
            "proxy",
            "zero",
            "latency",
            "core",
            "site",
        )
    ]
    words: list[str] = []
    size = 0
    while size < 100 * 1024:
        word = rng.choice(vocab) + (".</p>\n<p>" if rng.random() < 0.08 else " ")
        words.append(word)
        size += len(word)
    (www / "100k.html").write_text("".join(words)[: 100 * 1024])


def write_caddyfile(scratch: Path, w: Workload, port: int) -> Path:
    """The one Caddyfile both servers get for a workload (only the port changes per start)."""
    path = scratch / f"Caddyfile.{w.key}"
    path.write_text(f"{GLOBAL}\n:{port} {{\n{w.site}}}\n")
    return path


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(port: int, w: Workload) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", w.path, headers=dict(w.headers))
        resp = conn.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return Response(resp.status, headers, body)


def compare(caddy: Response, zs: Response) -> str | None:
    """Why zeroserve's response is not Caddy's (status, body, any header but Date), or None."""
    if zs.status != caddy.status:
        return f"status {zs.status}, Caddy {caddy.status}"
    if zs.body != caddy.body:
        return f"body differs ({len(zs.body)} vs Caddy's {len(caddy.body)} bytes)"
    keys = sorted((set(caddy.headers) | set(zs.headers)) - {"date"})
    for key in keys:
        if caddy.headers.get(key) != zs.headers.get(key):
            return f"{key}: {zs.headers.get(key)!r}, Caddy {caddy.headers.get(key)!r}"
    return None


@dataclass
class Throughput:
    rps: float
    requests: int
    errors: int
    cpu_us_per_req: float
    busy: float  # share of its core the server used during the run


def wrk(port: int, w: Workload, seconds: int) -> str:
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    for name, value in w.headers:
        argv += ["-H", f"{name}: {value}"]
    argv.append(f"http://127.0.0.1:{port}{w.path}")
    out = subprocess.run(
        on_cpu(LOADGEN_CPU, argv), capture_output=True, text=True, timeout=seconds + 30
    )
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip()}")
    return out.stdout


def measure_throughput(pid: int, port: int, w: Workload, seconds: int) -> Throughput:
    wrk(port, w, 1)  # warm-up: connections, caches, Go's heap
    before, start = cpu_seconds(pid), time.perf_counter()
    text = wrk(port, w, seconds)
    used, wall = cpu_seconds(pid) - before, time.perf_counter() - start
    totals = parse_wrk(text)
    per_req = used * 1e6 / totals.requests if totals.requests else float("nan")
    return Throughput(totals.rps, totals.requests, totals.errors, per_req, used / wall)


@dataclass
class Latency:
    p50: float
    p95: float
    p99: float
    done: int
    failed: int
    # h2load's own CPU time (utime+stime, wait4) per request done, and its user-space part.
    client_us: float
    client_user_us: float
    # Share of a burst's span (first request written to last answer read) that h2load's CPU
    # time per burst fills; None if no burst kept its requests together.
    client_busy: float | None


H2LOAD_REQS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored"
)


def burst_span(requests: list[tuple[int, int]], period_us: float) -> float | None:
    """Median µs from a burst's first request written to its last answer read, over the
    bursts whose LATENCY_CLIENTS requests were written together; `requests` holds h2load's
    (start µs, duration µs) per request."""
    bursts: list[list[tuple[int, int]]] = [[]]
    for start, duration in sorted(requests):
        # A late answer moves its connection's next request out of the burst.
        if bursts[-1] and start - bursts[-1][-1][0] > period_us / 4:
            bursts.append([])
        bursts[-1].append((start, duration))
    spans = [
        max(s + d for s, d in burst) - burst[0][0]
        for burst in bursts
        if len(burst) == LATENCY_CLIENTS
    ]
    return median(spans) if spans else None


def measure_latency(
    port: int, w: Workload, rate: int, seconds: int, scratch: Path, realtime: bool
) -> Latency:
    per_client = max(1, rate // LATENCY_CLIENTS)
    total = per_client * LATENCY_CLIENTS * seconds
    log = scratch / "h2load.log"
    log.unlink(missing_ok=True)
    argv = [
        "h2load",
        "--h1",
        "-t1",
        f"-c{LATENCY_CLIENTS}",
        f"--rps={per_client}",
        f"-n{total}",
        f"--log-file={log}",
    ]
    for name, value in w.headers:
        argv += ["-H", f"{name}: {value}"]
    argv.append(f"http://127.0.0.1:{port}{w.path}")
    stdout, stderr = scratch / "h2load.out", scratch / "h2load.err"
    run = run_measured(
        on_cpu(LOADGEN_CPU, argv, realtime), stdout, stderr, timeout=seconds * 4 + 30
    )
    text = stdout.read_text()
    match = H2LOAD_REQS.search(text)
    if run.returncode != 0 or not match:
        raise BenchError(f"h2load failed: {stderr.read_text().strip() or text[-300:]}")
    done = int(match.group(3))
    rows = [line.split("\t") for line in log.read_text().splitlines() if line]
    if not rows:
        raise BenchError("h2load logged no requests")
    ms = [int(row[2]) / 1000 for row in rows]
    client_us = run.cpu_seconds * 1e6 / max(1, done)
    span = burst_span([(int(row[0]), int(row[2])) for row in rows], 1e6 / per_client)
    return Latency(
        percentile(ms, 50),
        percentile(ms, 95),
        percentile(ms, 99),
        done,
        int(match.group(5)) + int(match.group(6)),
        client_us,
        run.user_seconds * 1e6 / max(1, done),
        LATENCY_CLIENTS * client_us / span if span else None,
    )


async def _hold_idle(port: int, count: int, pid: int) -> tuple[int, int, int]:
    """Open `count` keep-alive connections, one request each, then sample the server's RSS.

    Returns (opened, still open at sampling, RSS KiB).
    """
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    gate = asyncio.Semaphore(200)
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one() -> None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
            except (OSError, asyncio.IncompleteReadError):
                return
            streams.append((reader, writer))

    try:
        await asyncio.gather(*(one() for _ in range(count)))
        await asyncio.sleep(2)  # let the server settle after the burst of accepts
        rss = rss_kib(pid)
        alive = sum(1 for reader, _ in streams if not reader.at_eof())
        return len(streams), alive, rss
    finally:
        for _, writer in streams:
            writer.close()


@dataclass
class Idle:
    base_kib: int
    loaded_kib: int
    opened: int
    alive: int


def measure_idle(pid: int, port: int) -> Idle:
    base = rss_kib(pid)
    opened, alive, loaded = asyncio.run(_hold_idle(port, IDLE_CONNECTIONS, pid))
    return Idle(base, loaded, opened, alive)


@dataclass
class Results:
    # Per workload: None when zeroserve answers as Caddy does, else why not.
    checks: dict[str, str | None] = field(default_factory=dict)
    # Samples per (workload, server) for each phase.
    throughput: dict[tuple[str, str], list[Throughput]] = field(default_factory=dict)
    budget: dict[tuple[str, str], list[Throughput]] = field(default_factory=dict)
    latency: dict[tuple[str, str], list[Latency]] = field(default_factory=dict)
    idle: dict[tuple[str, str], list[Idle]] = field(default_factory=dict)
    rates: dict[str, int] = field(default_factory=dict)
    # (phase, workload) → why zeroserve's measurement stopped there.
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    zeroserve_error: str | None = None


def serving(w: Workload, scratch: Path, name: str) -> tuple[Path, int]:
    """`name`'s config for the workload, on a fresh port."""
    port = free_port()
    if name == "floor":
        answer = floor_answer(scratch, w).read_bytes()
        return floor_config(scratch / f"floor.{w.key}.conf", port, answer), port
    if name != "nginx":
        return write_caddyfile(scratch, w, port), port
    if w.nginx is None:
        raise BenchError(f"no nginx reference for {w.key}")
    return nginx_config(scratch / f"nginx.{w.key}.conf", port, w.nginx), port


def floor_answer(scratch: Path, w: Workload) -> Path:
    return scratch / f"floor.{w.key}.answer"


def raw_answer(port: int, w: Workload) -> bytes:
    """The bytes of one answer to the workload's request, as they came off the socket (the
    answer must carry a Content-Length)."""
    request = f"GET {w.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    request += "".join(f"{k}: {v}\r\n" for k, v in w.headers) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data) < answer_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                raise BenchError(f"answer for {w.key} cut short after {len(data)} bytes")
            data += chunk
    return data


def answer_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    raise BenchError("an answer without Content-Length")


def reference_answer(name: str, w: Workload, scratch: Path) -> Response:
    """The answer of reference server `name` (nginx, or the floor server) to the workload."""
    config, port = serving(w, scratch, name)
    with running(name, config, [port], scratch):
        return fetch(port, w)


def check_workloads(works: list[Workload], scratch: Path, res: Results, references: bool) -> None:
    """Which workloads zeroserve serves as Caddy does; only those are measured. With
    `references`, nginx's answer must have Caddy's status and body (it is a reference for the
    latency, where its headers, a few bytes, do not matter), and the floor server is given
    Caddy's answer, byte for byte, and checked the same way."""
    if zeroserve_binary() is None:
        res.zeroserve_error = "no .venv/bin/zeroserve (run `make setup`)"
    for w in works:
        config, port = serving(w, scratch, "caddy")
        with running("caddy", config, [port], scratch):
            caddy = fetch(port, w)
            if references and w.floor:
                floor_answer(scratch, w).write_bytes(raw_answer(port, w))
        if references and w.floor:
            why = compare(caddy, reference_answer("floor", w, scratch))
            if why is not None:
                raise BenchError(f"the floor server's answer for {w.key}: {why}")
        if references and w.nginx is not None:
            got = reference_answer("nginx", w, scratch)
            if (got.status, got.body) != (caddy.status, caddy.body):
                raise BenchError(
                    f"nginx's answer for {w.key} is not Caddy's: status {got.status} "
                    f"({caddy.status}), {len(got.body)} bytes ({len(caddy.body)})"
                )
        if res.zeroserve_error is not None:
            res.checks[w.key] = res.zeroserve_error
            continue
        config, port = serving(w, scratch, "zeroserve")
        try:
            with running("zeroserve", config, [port], scratch) as server:
                res.checks[w.key] = compare(caddy, fetch(port, w))
                if not server.alive():
                    res.checks[w.key] = "server exited after the request"
        except (BenchError, OSError, http.client.HTTPException) as exc:
            res.checks[w.key] = str(exc).splitlines()[0][:200]
        print(f"  check {w.key:>10}: {res.checks[w.key] or 'same response as Caddy'}", flush=True)


def caddy_and_zeroserve(w: Workload) -> tuple[str, ...]:
    return SERVERS


def run_phase(
    phase: str,
    works: list[Workload],
    rounds: int,
    scratch: Path,
    res: Results,
    samples: dict[tuple[str, str], list[T]],
    measure: Callable[[Workload, Server, int], T],
    show: Callable[[T], str],
    realtime: bool = False,
    cgroup: Path | None = None,
    servers: Callable[[Workload], tuple[str, ...]] = caddy_and_zeroserve,
) -> None:
    """Rounds of one measurement over workloads and `servers(workload)`, each server started
    fresh.

    A reference (Caddy, nginx) failing ends the benchmark; zeroserve failing ends only its
    part of this phase for that workload, and the report says why.
    """
    for r in range(rounds):
        for w in works:
            names = servers(w) if r % 2 == 0 else tuple(reversed(servers(w)))
            for name in names:
                if name == "zeroserve" and (
                    res.checks[w.key] is not None or (phase, w.key) in res.failures
                ):
                    continue
                config, port = serving(w, scratch, name)
                try:
                    with running(name, config, [port], scratch, realtime, cgroup) as server:
                        sample = measure(w, server, port)
                        if not server.alive():
                            raise BenchError(f"exited: {server.last_log_line()}")
                except (BenchError, OSError) as exc:
                    if name != "zeroserve":
                        raise
                    res.failures[(phase, w.key)] = str(exc).splitlines()[0][:200]
                    samples.pop((w.key, name), None)
                    print(f"  round {r + 1} {phase} {w.key} zeroserve failed: {exc}", flush=True)
                    continue
                samples.setdefault((w.key, name), []).append(sample)
                print(f"  round {r + 1} {phase} {w.key:>10} {name:>9}: {show(sample)}", flush=True)


def run_throughput(
    works: list[Workload],
    rounds: int,
    seconds: int,
    scratch: Path,
    res: Results,
    phases: tuple[str, ...],
    servers: Callable[[Workload], tuple[str, ...]] = caddy_and_zeroserve,
) -> None:
    """The free ("throughput") and the equal-budget ("budget") wrk runs, those in `phases`."""

    def measure(w: Workload, server: Server, port: int) -> Throughput:
        return measure_throughput(server.pid, port, w, seconds)

    def show(t: Throughput) -> str:
        return (
            f"{t.rps:10,.0f} req/s {t.cpu_us_per_req:8.1f} us/req {t.busy:5.0%} busy  "
            f"errors {t.errors}"
        )

    if "throughput" in phases:
        run_phase(
            "throughput",
            works,
            rounds,
            scratch,
            res,
            res.throughput,
            measure,
            show,
            servers=servers,
        )
    if "budget" in phases:
        with cpu_budget(BUDGET) as group:
            run_phase(
                "budget", works, rounds, scratch, res, res.budget, measure, show, cgroup=group
            )


def with_reference(w: Workload) -> tuple[str, ...]:
    return (*SERVERS, "nginx") if w.nginx is not None else SERVERS


def with_floor(w: Workload) -> tuple[str, ...]:
    """The servers of the free throughput run and of the latency phase: the references, and
    the floor server where it runs."""
    return (*with_reference(w), "floor") if w.floor else with_reference(w)


def run_latency(
    works: list[Workload],
    rounds: int,
    seconds: int,
    wrk_seconds: int,
    realtime: bool,
    references: bool,
    fixed: dict[str, int],
    scratch: Path,
    res: Results,
) -> None:
    res.rates.update(fixed)
    unrated = [
        w for w in works if w.key not in res.rates and (w.key, "caddy") not in res.throughput
    ]
    if unrated:
        # The offered rate is a share of Caddy's free throughput: measured here when the
        # throughput phase was left out.
        print("  Caddy's throughput, for the offered rate", flush=True)
        run_throughput(
            unrated, rounds, wrk_seconds, scratch, res, ("throughput",), lambda w: ("caddy",)
        )
    for w in works:
        if w.key not in res.rates:
            caddy_rps = median([t.rps for t in res.throughput[(w.key, "caddy")]])
            res.rates[w.key] = max(LATENCY_CLIENTS, min(RATE_CAP, int(caddy_rps * RATE_SHARE)))

    def measure(w: Workload, server: Server, port: int) -> Latency:
        return measure_latency(port, w, res.rates[w.key], seconds, scratch, realtime)

    def show(lat: Latency) -> str:
        return (
            f"p50 {lat.p50:.3f} p95 {lat.p95:.3f} p99 {lat.p99:.3f} ms failed {lat.failed}, "
            f"h2load {lat.client_us:.1f} us CPU/req, "
            + (f"busy {lat.client_busy:.0%} of a burst" if lat.client_busy else "no whole burst")
        )

    run_phase(
        "latency",
        works,
        rounds,
        scratch,
        res,
        res.latency,
        measure,
        show,
        realtime,
        servers=with_floor if references else caddy_and_zeroserve,
    )


def run_idle(works: list[Workload], rounds: int, scratch: Path, res: Results) -> None:
    def measure(w: Workload, server: Server, port: int) -> Idle:
        return measure_idle(server.pid, port)

    def show(idle: Idle) -> str:
        return (
            f"{idle.base_kib / 1024:.1f} -> {idle.loaded_kib / 1024:.1f} MiB, "
            f"{idle.alive}/{idle.opened} open"
        )

    run_phase("idle", works[:1], rounds, scratch, res, res.idle, measure, show)


def goal(value: float | None, limit: float, at_least: bool) -> str:
    if value is None:
        return "not measured"
    met = value >= limit if at_least else value <= limit
    return "met" if met else "**not met**"


def med(values: list[float]) -> float | None:
    return median(values) if values else None


def latency_text(args: argparse.Namespace) -> tuple[str, str]:
    """The latency method, and how the client floor and the nginx reference are measured."""
    rt = " ".join(REALTIME) + " " if args.realtime else ""
    method = (
        f"`taskset -c 0 {rt}h2load --h1 -t1 -c{LATENCY_CLIENTS} --rps=R/{LATENCY_CLIENTS} "
        f"-n R×{args.latency_duration}` ({tool_version(['h2load', '--version'])}); R = "
        f"{RATE_SHARE:.0%} of Caddy's median req/s for the workload, at most {RATE_CAP:,}/s"
        + (" (set with `--rate` where the command line says so)" if args.rate else "")
        + ", the same for every server. Percentiles of every request's time from h2load's "
        "`--log-file`, in ms. h2load paces each of its connections (one request in flight per "
        "HTTP/1.1 connection), so a slow response delays that connection's next request: a "
        "closed loop per connection, open across connections. The connections start together "
        f"and pace alike, so each period's requests arrive as one burst of {LATENCY_CLIENTS}, "
        "and p95 and p99 are about the time to answer a whole burst: it includes h2load writing "
        f"all {LATENCY_CLIENTS} requests before it reads any answer, and reading them one by "
        "one, which every server pays (the client floor below puts a number on it). "
        + (
            "Servers and h2load run under SCHED_RR (`chrt --rr 10`): at a fixed rate neither "
            "needs a whole core, and without it the tail measured the other work on the shared "
            "machine (p95 of 5–10 ms for both servers) rather than the servers. Paced requests "
            "find client and server asleep, so every figure includes wake-up costs; every "
            "server pays them, which pulls the ratios toward 1."
            if args.realtime
            else "Normal scheduling (`--no-realtime`): on a busy machine the tail includes "
            "waiting for a CPU."
        )
    )
    floor = (
        "h2load CPU µs/request = h2load's own utime+stime (wait4 on its process) over the run ÷ "
        "requests done, in each server's run, with its user-space part in parentheses (the "
        "rest is the kernel's: receiving and copying the answers, and the TCP work that h2load's "
        "ACKs set off). h2load is one thread and handles a burst's answers one after another, "
        "so the k-th answer of a burst cannot be recorded before h2load has done about k "
        f"requests' worth of work. p95 is the answer of rank {FLOOR_RANK} in a burst of "
        f"{LATENCY_CLIENTS} (nearest rank), hence client floor p95 = {FLOOR_RANK} × h2load CPU "
        "per request: about the p95 this client would report for a server that answered "
        "instantly. It is an estimate, not a strict bound: it counts the writing of requests "
        "sent after the timed one, and leaves out wake-ups and the server's time to its first "
        'answer. "h2load busy in a burst" checks the premise: '
        f"{LATENCY_CLIENTS} × h2load's CPU per request ÷ the median time from a burst's first "
        "request written to its last answer read (over the bursts whose requests were written "
        "together); near 100%, h2load worked through the whole burst and set its length. "
        "h2load's cost per request also depends on the server (how many answers one "
        'wake-up finds, how a body arrives), so the floor is per run; "lowest client floor ÷ '
        "Caddy p95\" takes the lowest of the servers' runs: above "
        f"{P95_GOAL}x, meeting the p95 goal would take a server that makes h2load's own work "
        "cheaper than any server measured here does."
    )
    if args.nginx:
        floor += (
            f" The reference, {tool_version([nginx_binary(), '-v']).split(': ')[-1]} (one "
            'process, `sendfile on`; `return 200 "hello"` for the respond '
            "workload), runs on the same core with the same scheduling, measured the same way "
            "in the same rounds, on the workloads where its answer has Caddy's status and body: "
            "what a lean server gets from this client. The floor server (see the throughput "
            "section) runs the same way on respond: the p95 of a server that does nothing but "
            "send the answer bytes, so a p95 goal it misses is out of reach here. The goals "
            "are judged against Caddy only."
        )
    return method, floor


def client_floor(samples: list[Latency]) -> float | None:
    """The p95 that h2load's own work allows, in ms (see the latency section's text)."""
    if not samples:
        return None
    return FLOOR_RANK * median([s.client_us for s in samples]) / 1000


def busy_share(samples: list[Latency]) -> str:
    shares = [s.client_busy for s in samples if s.client_busy is not None]
    return f"{median(shares):.0%}" if shares else "—"


def trio(samples: list[Latency]) -> str:
    if not samples:
        return "—"
    return " / ".join(
        f"{median([getattr(s, p) for s in samples]):.2f}" for p in ("p50", "p95", "p99")
    )


def report(works: list[Workload], args: argparse.Namespace, res: Results) -> str:
    def status_note(w: Workload) -> str:
        why = res.checks[w.key]
        if why is not None:
            return f"not yet served: {why}"
        failed = [
            f"{phase} failed: {msg}" for (phase, key), msg in res.failures.items() if key == w.key
        ]
        return "; ".join(["same response as Caddy", *failed])

    phases = args.phases
    thr_rows = []
    # Workloads where nginx also ran free: its CPU per request, beside Caddy's and ours.
    lean_rows = []
    budget_rows = []
    lat_rows = []
    floor_rows = []
    # Workload title → why no server can meet its p95 goal under this client.
    below_floor: dict[str, str] = {}
    for w in works:
        if "throughput" in phases:
            c = res.throughput[(w.key, "caddy")]
            z = res.throughput.get((w.key, "zeroserve"), [])
            c_rps, z_rps = med([t.rps for t in c]), med([t.rps for t in z])
            c_cpu, z_cpu = med([t.cpu_us_per_req for t in c]), med([t.cpu_us_per_req for t in z])
            rps_ratio, cpu_ratio = ratio(z_rps, c_rps), ratio(z_cpu, c_cpu)
            errors = f"{sum(t.errors for t in c)} / " + (
                str(sum(t.errors for t in z)) if z else "—"
            )
            c_busy, z_busy = med([t.busy for t in c]), med([t.busy for t in z])
            busy = f"{c_busy:.0%} / " + (f"{z_busy:.0%}" if z_busy is not None else "—")
            thr_rows.append(
                [
                    w.title,
                    fmt_num(c_rps),
                    fmt_num(z_rps),
                    fmt_ratio(rps_ratio),
                    busy,
                    fmt_num(c_cpu, 1),
                    fmt_num(z_cpu, 1),
                    fmt_ratio(cpu_ratio),
                    goal(cpu_ratio, 1 / 3, False),
                    errors,
                    status_note(w),
                ]
            )
            n_cpu = med([t.cpu_us_per_req for t in res.throughput.get((w.key, "nginx"), [])])
            f_cpu = med([t.cpu_us_per_req for t in res.throughput.get((w.key, "floor"), [])])
            if n_cpu is not None:
                lean_rows.append(
                    [
                        w.title,
                        fmt_num(c_cpu, 1),
                        fmt_num(z_cpu, 1),
                        fmt_num(n_cpu, 1),
                        fmt_ratio(ratio(n_cpu, c_cpu)),
                        fmt_ratio(ratio(z_cpu, n_cpu)),
                        fmt_num(f_cpu, 2) if f_cpu is not None else "—",
                        fmt_ratio(ratio(f_cpu, c_cpu)) if f_cpu is not None else "—",
                    ]
                )
        if "budget" in phases:
            bc = res.budget[(w.key, "caddy")]
            bz = res.budget.get((w.key, "zeroserve"), [])
            bc_rps, bz_rps = med([t.rps for t in bc]), med([t.rps for t in bz])
            bc_busy, bz_busy = med([t.busy for t in bc]), med([t.busy for t in bz])
            budget_ratio = ratio(bz_rps, bc_rps)
            rps_goal = goal(budget_ratio, 3.0, True)
            # A server that left budget unused was paced by the load generator, not by its own
            # cost, so the ratio is not a capacity ratio: say so instead of claiming a verdict.
            starved = [
                f"{who} used only {used:.1%}"
                for who, used in (("Caddy", bc_busy), ("zeroserve", bz_busy))
                if used is not None and used < SATURATED * BUDGET
            ]
            if starved and budget_ratio is not None:
                rps_goal = f"unreliable ({', '.join(starved)} of {BUDGET:.0%})"
            budget_rows.append(
                [
                    w.title,
                    fmt_num(bc_rps),
                    fmt_num(bz_rps),
                    fmt_ratio(budget_ratio),
                    rps_goal,
                    f"{bc_busy:.1%} / " + (f"{bz_busy:.1%}" if bz_busy is not None else "—"),
                ]
            )
        if "latency" in phases:
            per = {
                name: res.latency.get((w.key, name), []) for name in (*SERVERS, "nginx", "floor")
            }
            c_p95 = med([s.p95 for s in per["caddy"]])
            p95_ratio = ratio(med([s.p95 for s in per["zeroserve"]]), c_p95)
            floors = [f for f in map(client_floor, per.values()) if f is not None]
            floor_share = ratio(min(floors), c_p95)
            floor_p95 = ratio(med([s.p95 for s in per["floor"]]), c_p95)
            out_of_reach = []
            if floor_share is not None and floor_share > P95_GOAL:
                out_of_reach.append(
                    f"the lowest client floor alone is {fmt_ratio(floor_share)} of Caddy's p95"
                )
            if floor_p95 is not None and floor_p95 > P95_GOAL:
                out_of_reach.append(
                    f"the floor server's own p95 is {fmt_ratio(floor_p95)} of Caddy's"
                )
            if out_of_reach:
                below_floor[w.title] = "; ".join(out_of_reach)
            zl = per["zeroserve"]
            failed = f"{sum(s.failed for s in per['caddy'])} / " + (
                str(sum(s.failed for s in zl)) if zl else "—"
            )
            lat_rows.append(
                [
                    w.title,
                    f"{res.rates[w.key]:,}",
                    trio(per["caddy"]),
                    trio(zl),
                    fmt_ratio(p95_ratio),
                    goal(p95_ratio, P95_GOAL, False),
                    fmt_ratio(floor_share),
                    fmt_ratio(floor_p95) if floor_p95 is not None else "—",
                    failed,
                ]
            )
            for name, samples in per.items():
                floor = client_floor(samples)
                if floor is None:
                    continue
                floor_rows.append(
                    [
                        w.title,
                        name,
                        trio(samples),
                        f"{median([s.client_us for s in samples]):.1f} "
                        f"({median([s.client_user_us for s in samples]):.1f})",
                        f"{floor:.2f}",
                        fmt_ratio(ratio(median([s.p95 for s in samples]), floor)),
                        busy_share(samples),
                        str(sum(s.failed for s in samples)),
                    ]
                )

    idle_rows = []
    idle_cmp: dict[str, float] = {}
    for name in SERVERS:
        samples = res.idle.get((works[0].key, name), [])
        if not samples:
            idle_rows.append([name, "—", "—", "—", "—"])
            continue
        base = median([s.base_kib for s in samples]) / 1024
        loaded = median([s.loaded_kib for s in samples]) / 1024
        idle_cmp[name] = loaded
        per_conn = (loaded - base) * 1024 / max(1, median([s.alive for s in samples]))
        idle_rows.append(
            [
                name,
                f"{base:.1f}",
                f"{loaded:.1f}",
                f"{per_conn:.1f}",
                f"{min(s.alive for s in samples):,} / {IDLE_CONNECTIONS:,}",
            ]
        )
    idle_ratio = ratio(idle_cmp.get("zeroserve"), idle_cmp.get("caddy"))

    not_served = [w.title for w in works if res.checks[w.key] is not None]
    checks = [(f"{row[0]}: req/s ≥3x", row[4]) for row in budget_rows]
    checks += [(f"{row[0]}: CPU/request ≤1/3", row[8]) for row in thr_rows]
    checks += [
        (f"{row[0]}: p95 ≤0.3x", ", ".join([row[5], *filter(None, [below_floor.get(row[0])])]))
        for row in lat_rows
    ]
    if "idle" in phases:
        checks.append(("idle-connection RSS ≤ Caddy's", goal(idle_ratio, 1.0, False)))
    unmet = [f"{name}: {verdict}" for name, verdict in checks if verdict.startswith("**not")]
    unmeasured = [name for name, verdict in checks if verdict == "not measured"]
    unjudged = [f"{name}: {verdict}" for name, verdict in checks if verdict.startswith("unrel")]

    parts = [
        f"Command: `{command_line()}`",
        f"Machine: {machine_line()}. {args.rounds} rounds; every figure is the median over "
        "rounds, ratios are zeroserve/Caddy. Each server is started fresh per workload and "
        "round (alternating which goes first) on the same Caddyfile (global options `admin off`,"
        " `auto_https off`, `default_bind 127.0.0.1`; one site `:PORT`).",
        "zeroserve is measured on a workload only if its response equals Caddy's (status, "
        "body, every header but Date); otherwise the notes say how it differs.",
        "Pinning (2 cores): server on CPU 1 (`taskset -c 1`; zeroserve `--workers 1`, Caddy's "
        "GOMAXPROCS follows the mask, so 1), load generator on CPU 0.",
    ]
    if set(phases) != set(PHASES):
        parts.append(f"Phases run: {', '.join(phases)} (of {', '.join(PHASES)}).")
    if "throughput" in phases:
        wrk_v = tool_version(["wrk", "--version"])
        parts += [
            "### Throughput and CPU per request",
            f"`taskset -c 0 wrk -t1 -c{CONNECTIONS} -d{args.duration}s` after a 1 s warm-up "
            f"({wrk_v.split(' Copyright')[0]}). CPU µs/request = server utime+stime "
            "(/proc/PID/stat) over the run ÷ requests wrk completed; core busy = that CPU time ÷ "
            "the run's wall time. A server well below 100% busy was not the bottleneck: one wrk "
            "thread on the other core was, so its req/s is a lower bound (the next table "
            "compares req/s with the servers saturated). Errors = socket errors + "
            "non-2xx/3xx, summed over rounds (Caddy / zeroserve).",
            md_table(
                [
                    "workload",
                    "Caddy req/s",
                    "zeroserve req/s",
                    "ratio",
                    "server core busy (Caddy / zeroserve)",
                    "Caddy CPU µs/req",
                    "zeroserve CPU µs/req",
                    "ratio",
                    "goal ≤0.33x",
                    "errors",
                    "notes",
                ],
                thr_rows,
            ),
        ]
        if lean_rows:
            parts += [
                "nginx as a reference for CPU per request: the same wrk run against "
                f"{tool_version([nginx_binary(), '-v']).split(': ')[-1]} (one process, "
                '`sendfile on`, no access log; `return 200 "hello"` for the respond workload) '
                "on the same core, in the same rounds, on the workloads where its answer has "
                "Caddy's status and body. Most of a small response's cost is the kernel's "
                "loopback TCP path, which every server pays on its own core; nginx shows what a "
                "lean C server spends there. The floor server (respond only; "
                "`appliance/proxy/examples/floor_server.rs`) goes further: the engine's own ring "
                "layer (multishot accept and recv into provided buffers, one send per read) "
                "answering every read with Caddy's answer, byte for byte, with no parsing, "
                "routing or clock, in the same rounds: what the kernel and the ring cost here, "
                "below which no server built this way can go. Where floor/Caddy is above 0.33x, "
                "that alone is over the CPU goal. The goals are judged against Caddy only.",
                md_table(
                    [
                        "workload",
                        "Caddy CPU µs/req",
                        "zeroserve CPU µs/req",
                        "nginx CPU µs/req",
                        "nginx/Caddy",
                        "zeroserve/nginx",
                        "floor server CPU µs/req",
                        "floor/Caddy",
                    ],
                    lean_rows,
                ),
            ]
    if "budget" in phases:
        parts += [
            "### Requests per second at an equal CPU budget",
            f"The same wrk run, with each server in a cgroup capped at {BUDGET:.0%} of one core "
            "(CFS bandwidth, 10 ms period), so that the server and not the load generator is "
            "the bottleneck: the req/s ratio is then the ratio of what each server does with "
            f"the same CPU. Budget used = server CPU time ÷ wall time (the cap is {BUDGET:.0%}).",
            md_table(
                [
                    "workload",
                    "Caddy req/s",
                    "zeroserve req/s",
                    "ratio",
                    "goal ≥3x",
                    "budget used (Caddy / zeroserve)",
                ],
                budget_rows,
            ),
        ]
    if "latency" in phases:
        method, floor_text = latency_text(args)
        parts += [
            "### Latency at a fixed offered rate",
            method,
            md_table(
                [
                    "workload",
                    "rate req/s",
                    "Caddy p50 / p95 / p99 ms",
                    "zeroserve p50 / p95 / p99 ms",
                    "p95 ratio",
                    "goal ≤0.3x",
                    "lowest client floor ÷ Caddy p95",
                    "floor server p95 ÷ Caddy p95",
                    "failed (Caddy / zeroserve)",
                ],
                lat_rows,
            ),
            "#### Client floor, nginx and the floor server as references",
            floor_text,
            md_table(
                [
                    "workload",
                    "server",
                    "p50 / p95 / p99 ms",
                    "h2load CPU µs/request (user part)",
                    f"client floor p95 ms ({FLOOR_RANK} × CPU/request)",
                    "p95 ÷ floor",
                    "h2load busy in a burst",
                    "failed",
                ],
                floor_rows,
            ),
        ]
    if "idle" in phases:
        parts += [
            "### Memory with idle keep-alive connections",
            f"{IDLE_CONNECTIONS:,} connections opened by the script (Python asyncio), each "
            "served one `GET /` of the respond workload and then left idle; VmRSS "
            f"(/proc/PID/status) 2 s after the last one opened. RSS ratio zeroserve/Caddy: "
            f"{fmt_ratio(idle_ratio)}, goal ≤1.0x: {goal(idle_ratio, 1.0, False)}.",
            md_table(
                [
                    "server",
                    "RSS before MiB",
                    "RSS with idle conns MiB",
                    "KiB per conn",
                    "still open at sampling (min over rounds)",
                ],
                idle_rows,
            ),
        ]
    parts.append("### Goals not met")
    if res.zeroserve_error:
        parts.append(f"zeroserve was not measured: {res.zeroserve_error}.")
    if not_served:
        parts.append("Not yet served by zeroserve (not measured): " + "; ".join(not_served) + ".")
    if "throughput" not in phases and res.failures:
        # Without the throughput table, whose notes carry them.
        parts.append("zeroserve failures: " + "; ".join(status_note(w) for w in works) + ".")
    parts.append(
        "\n".join(f"- {u}" for u in unmet) if unmet else "None of the measured goals is missed."
    )
    if unjudged:
        parts.append(
            "Not judged (a server was not saturated):\n" + "\n".join(f"- {u}" for u in unjudged)
        )
    if unmeasured:
        parts.append(
            f"Not measured, so not shown to be met: {len(unmeasured)} of {len(checks)} goals."
        )
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=5, help="wrk seconds per run")
    parser.add_argument("--latency-duration", type=int, default=5, help="h2load seconds per run")
    parser.add_argument("--only", nargs="*", help="workload keys to run (default: all)")
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=PHASES,
        default=list(PHASES),
        help="phases to run (default: all); a partial run needs --no-doc",
    )
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="KEY=REQS",
        help="fixed offered rate of the latency phase for workload KEY (repeatable), instead "
        "of half of Caddy's req/s measured in the run (to compare runs on a noisy machine)",
    )
    parser.add_argument(
        "--no-nginx",
        dest="nginx",
        action="store_false",
        help="leave out the references: nginx, and the floor server",
    )
    parser.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="run the latency phase at normal priority instead of SCHED_RR",
    )
    args = parse_args(parser, default_rounds=3)
    if not 1 <= args.duration <= 60 or not 1 <= args.latency_duration <= 60:
        fail("durations must be between 1 and 60 seconds")
    # The doc's section holds a whole run; a partial one would replace it.
    if set(args.phases) != set(PHASES) and not args.no_doc:
        fail("--phases with only some phases needs --no-doc")
    args.phases = tuple(p for p in PHASES if p in args.phases)
    fixed: dict[str, int] = {}
    for item in args.rate:
        key, _, reqs = item.partition("=")
        if not reqs.isdigit() or int(reqs) < LATENCY_CLIENTS:
            fail(f"--rate {item}: expected KEY=REQS with REQS at least {LATENCY_CLIENTS}")
        fixed[key] = int(reqs)
    references = args.nginx and bool({"latency", "throughput"} & set(args.phases))
    try:
        require_tools("wrk", "h2load", "taskset", *(["chrt"] if args.realtime else []))
        if references:
            nginx_binary()
            build_floor_server()
        if raise_fd_limit() < IDLE_CONNECTIONS + 100:
            raise BenchError(f"open-files hard limit below {IDLE_CONNECTIONS + 100}")
        os.sched_setaffinity(0, {int(LOADGEN_CPU)})
        with tempfile.TemporaryDirectory(prefix="zs-http-bench-") as tmp:
            scratch = Path(tmp)
            make_files(scratch / "www")
            works = [w for w in workloads(scratch / "www") if not args.only or w.key in args.only]
            if not works:
                raise BenchError("no workload selected")
            unknown = set(fixed) - {w.key for w in works}
            if unknown:
                raise BenchError(f"--rate for workloads not run: {', '.join(sorted(unknown))}")
            res = Results()
            print("checking responses", flush=True)
            check_workloads(works, scratch, res, references)
            if {"throughput", "budget"} & set(args.phases):
                print("throughput", flush=True)
                run_throughput(
                    works,
                    args.rounds,
                    args.duration,
                    scratch,
                    res,
                    args.phases,
                    with_floor if references else caddy_and_zeroserve,
                )
            if "latency" in args.phases:
                print("latency", flush=True)
                run_latency(
                    works,
                    args.rounds,
                    args.latency_duration,
                    args.duration,
                    args.realtime,
                    references,
                    fixed,
                    scratch,
                    res,
                )
            if "idle" in args.phases and works[0].key == "respond":
                print("idle connections", flush=True)
                run_idle(works, args.rounds, scratch, res)
            body = report(works, args, res)
    except (BenchError, OSError, http.client.HTTPException) as exc:
        # Caddy, the reference, misbehaving (or the machine refusing) ends the run plainly.
        fail(str(exc))
    publish(body, args, "http", "HTTP engine: zeroserve vs Caddy")


if __name__ == "__main__":
    main()
