"""Response cache: zeroserve's `cache` + `reverse_proxy` with the cache warm, against Caddy
2.11.7's plain `reverse_proxy` (uncached) to the same local origin, one run, medians of rounds.

The origin is a Caddy serving a 1 KB and a 100 KB file with `Cache-Control: max-age=3600`,
pinned with the load generator to CPU 0. The front server runs on CPU 1 (one engine worker;
Caddy with one P), `wrk -t1 -c64` for --duration seconds after a 1 s warm-up, on CPU 0. Rows:
Caddy `reverse_proxy` (uncached), zeroserve `reverse_proxy` (uncached), zeroserve `cache` +
`reverse_proxy` (warm: every request is a hit). Figures: requests/s with the front server
free to use its core, and with each front capped at the same 10% of a core (cgroup CPU
bandwidth), where the front server, not wrk or the origin on CPU 0, is the bottleneck; and
the front server's CPU per request (utime+stime from /proc over the free wrk run, divided by
the requests). Before
measuring, each front's response is checked: status 200, the whole body, and for the cache
`Cache-Status: Souin; hit; ...` once warm.

    python bench/cache_bench.py [--rounds 3] [--duration 5] [--nice N] [--no-doc]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    LOADGEN_CPU,
    BenchError,
    Server,
    caddy_binary,
    child_env,
    command_line,
    cpu_budget,
    fail,
    fmt_num,
    fmt_ratio,
    free_port,
    machine_line,
    md_table,
    median,
    on_cpu,
    parse_args,
    publish,
    ratio,
    require_tools,
    running,
    wait_port,
)
from http_bench import CONNECTIONS, measure_throughput
from proxy_bench import BODIES, body_files, workload

# The capped phase's CPU share for each front server.
CAP = 0.1
FRONTS = ("caddy", "zeroserve", "zeroserve_cache")
FRONT_TITLES = {
    "caddy": "Caddy `reverse_proxy` (uncached)",
    "zeroserve": "zeroserve `reverse_proxy` (uncached)",
    "zeroserve_cache": "zeroserve `cache` + `reverse_proxy` (warm)",
}


@dataclass
class Run:
    rps: float
    cpu_us: float
    errors: int
    capped_rps: float = 0.0


def origin_caddyfile(scratch: Path, port: int) -> Path:
    www = body_files(scratch)
    path = scratch / "origin.Caddyfile"
    path.write_text(
        f"{{\n\tadmin off\n}}\n:{port} {{\n\troot * {www}\n"
        '\theader Cache-Control "max-age=3600"\n\tfile_server\n}\n'
    )
    return path


def front_caddyfile(scratch: Path, front: str, port: int, origin: int) -> Path:
    cache = "\tcache {\n\t\tttl 1h\n\t}\n" if front == "zeroserve_cache" else ""
    options = "\torder cache before rewrite\n" if cache else ""
    path = scratch / f"{front}.Caddyfile"
    path.write_text(
        f"{{\n\tadmin off\n{options}}}\n:{port} {{\n{cache}\treverse_proxy 127.0.0.1:{origin}\n}}\n"
    )
    return path


def fetch(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def check(front: str, port: int, name: str) -> None:
    for _ in range(2):
        status, headers, body = fetch(port, f"/{name}.bin")
        if status != 200 or len(body) != BODIES[name]:
            raise BenchError(f"{front} /{name}.bin: status {status}, {len(body)} bytes")
    if front == "zeroserve_cache" and "; hit;" not in headers.get("cache-status", ""):
        raise BenchError(f"cache not warm for /{name}.bin: {headers.get('cache-status')!r}")


def measure(pid: int, port: int, body: str, seconds: int) -> Run:
    t = measure_throughput(pid, port, workload(body), seconds)
    return Run(t.rps, t.cpu_us_per_req, t.errors)


def start_origin(scratch: Path) -> tuple[Server, int]:
    port = free_port()
    config = origin_caddyfile(scratch, port)
    argv = on_cpu(
        LOADGEN_CPU,
        [str(caddy_binary()), "run", "--config", str(config), "--adapter", "caddyfile"],
    )
    log = scratch / "origin.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=child_env(scratch)
        )
    origin = Server("origin", proc, log)
    wait_port(port, origin)
    return origin, port


def run_rounds(rounds: int, seconds: int, scratch: Path) -> dict[tuple[str, str], list[Run]]:
    results: dict[tuple[str, str], list[Run]] = {}
    origin, origin_port = start_origin(scratch)
    try:
        for rnd in range(rounds):
            for front in FRONTS:
                port = free_port()
                config = front_caddyfile(scratch, front, port, origin_port)
                name = "caddy" if front == "caddy" else "zeroserve"
                runs = {}
                with running(name, config, [port], scratch) as server:
                    for body in BODIES:
                        check(front, port, body)
                        runs[body] = measure(server.pid, port, body, seconds)
                with (
                    cpu_budget(CAP) as group,
                    running(name, config, [port], scratch, cgroup=group) as server,
                ):
                    for body in BODIES:
                        check(front, port, body)
                        capped = measure(server.pid, port, body, seconds)
                        run = runs[body]
                        run.capped_rps = capped.rps
                        run.errors += capped.errors
                        results.setdefault((front, body), []).append(run)
                        print(
                            f"round {rnd + 1} {front:16} {body:5} {run.rps:10.0f} req/s "
                            f"{run.cpu_us:7.1f} us/req, capped {run.capped_rps:8.0f} req/s",
                            flush=True,
                        )
    finally:
        origin.stop()
    return results


def report(results: dict[tuple[str, str], list[Run]], args: argparse.Namespace) -> str:
    rows = []
    caddy_rps = {b: median([r.rps for r in results[("caddy", b)]]) for b in BODIES}
    caddy_cpu = {b: median([r.cpu_us for r in results[("caddy", b)]]) for b in BODIES}
    caddy_capped = {b: median([r.capped_rps for r in results[("caddy", b)]]) for b in BODIES}
    for front in FRONTS:
        for body in BODIES:
            runs = results[(front, body)]
            rps = median([r.rps for r in runs])
            cpu = median([r.cpu_us for r in runs])
            capped = median([r.capped_rps for r in runs])
            rows.append(
                [
                    FRONT_TITLES[front],
                    body.upper().replace("K", " KB"),
                    fmt_num(rps),
                    fmt_ratio(ratio(rps, caddy_rps[body])),
                    fmt_num(capped),
                    fmt_ratio(ratio(capped, caddy_capped[body])),
                    fmt_num(cpu, 1),
                    fmt_ratio(ratio(cpu, caddy_cpu[body])),
                    str(sum(r.errors for r in runs)),
                ]
            )

    def verdict(key: str, caddy: dict[str, float]) -> str:
        warm = [
            ratio(median([getattr(r, key) for r in results[("zeroserve_cache", b)]]), caddy[b])
            for b in BODIES
        ]
        shown = ", ".join(
            f"{b.upper().replace('K', ' KB')} {fmt_ratio(w)}"
            for b, w in zip(BODIES, warm, strict=True)
        )
        met = all(w is not None and w >= 3 for w in warm)
        return f"{shown} ({'met' if met else 'not met'})"

    table = md_table(
        [
            "front server",
            "body",
            "req/s",
            "vs Caddy",
            f"req/s at {CAP:.0%} of a core",
            "vs Caddy",
            "CPU µs/request",
            "vs Caddy",
            "socket errors",
        ],
        rows,
    )
    return (
        f"Command: `{command_line()}`\n\n{machine_line()}\n\n"
        f"Origin: Caddy serving the body files on CPU 0 with wrk; front server on CPU 1; "
        f"`wrk -t1 -c{CONNECTIONS} -d{args.duration}s`, median of {args.rounds} rounds.\n\n"
        f"{table}\n\n"
        "Goal: the warm cache at least 3x Caddy's uncached requests/s. With each front capped "
        f"at the same CPU share: {verdict('capped_rps', caddy_capped)}; free: "
        f"{verdict('rps', caddy_rps)}. Free, the rows are bounded by CPU 0, which runs the "
        "single wrk thread and, for the uncached rows, the origin too, on a machine shared "
        "with other work; the capped rows and the CPU per request measure the front server "
        "itself.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=5, help="wrk seconds per run")
    args = parse_args(parser, default_rounds=3)
    if not 1 <= args.duration <= 60:
        fail("--duration must be between 1 and 60 seconds")
    try:
        require_tools("wrk", "taskset")
        os.sched_setaffinity(0, {int(LOADGEN_CPU)})
        with tempfile.TemporaryDirectory(prefix="zs-cache-bench-") as tmp:
            started = time.monotonic()
            results = run_rounds(args.rounds, args.duration, Path(tmp))
            print(f"measured in {time.monotonic() - started:.0f} s", flush=True)
            body = report(results, args)
    except (BenchError, OSError, http.client.HTTPException) as exc:
        fail(str(exc))
    publish(body, args, "cache", "Response cache: zeroserve `cache` vs Caddy uncached")


if __name__ == "__main__":
    main()
