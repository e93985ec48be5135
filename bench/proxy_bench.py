"""reverse_proxy: zeroserve vs Caddy 2.11.7 proxying to the same local nginx, one run, medians
of rounds.

The upstream is Debian's nginx, started by this script as a child (one process, no daemon,
its own config and temp paths in a scratch folder, 127.0.0.1 only), serving a 1 KB and a
100 KB file; it runs on CPU 0 with the load generators. Both front servers get the same
Caddyfile (`reverse_proxy 127.0.0.1:PORT`) and run on CPU 1 (one engine worker; Caddy with one
P). For each body and front server, with the same tools and rules as `http_bench.py`:

- requests/s: `wrk -t1 -c64` for --duration seconds after a 1 s warm-up, once with the front
  free to use its core and once with each front capped at the same 10% of a core (cgroup CPU
  bandwidth), where the front, not wrk or nginx on CPU 0, is the bottleneck;
- CPU per request: the front's utime+stime (/proc/PID/stat) over the free run / requests;
- latency at a fixed offered rate: `h2load --h1 --rps`, the same rate for both (half of
  Caddy's median free requests/s, capped), p50/p95/p99 from h2load's per-request log, front
  and h2load under SCHED_RR unless --no-realtime; and, for reference, the same with no front
  (h2load straight to nginx, which share CPU 0 in every run).

Before measuring, each front's answer is checked: status 200 and the whole body.

    python bench/proxy_bench.py [--rounds 3] [--duration 5] [--latency-duration 5]
                                [--no-realtime] [--nice N] [--no-doc]
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    LOADGEN_CPU,
    BenchError,
    command_line,
    cpu_budget,
    fail,
    fmt_num,
    fmt_ratio,
    free_port,
    machine_line,
    md_table,
    median,
    nginx_binary,
    nginx_config,
    parse_args,
    publish,
    ratio,
    require_tools,
    running,
    tool_version,
)
from http_bench import (
    BUDGET,
    CONNECTIONS,
    LATENCY_CLIENTS,
    RATE_CAP,
    RATE_SHARE,
    Latency,
    Throughput,
    Workload,
    measure_latency,
    measure_throughput,
)

SERVERS = ("caddy", "zeroserve")
NO_FRONT = "no front"
BODIES = {"1k": 1024, "100k": 100 * 1024}


def body_files(scratch: Path) -> Path:
    """A folder of the BODIES files (`/1k.bin`, `/100k.bin`) for an origin to serve."""
    www = scratch / "www"
    www.mkdir()
    for name, size in BODIES.items():
        (www / f"{name}.bin").write_bytes(bytes(i % 251 for i in range(size)))
    return www


def nginx_upstream(scratch: Path) -> tuple[Path, int]:
    """The upstream's config (see `nginx_config`) and port, serving the BODIES files."""
    www = body_files(scratch)
    port = free_port()
    return nginx_config(scratch / "nginx.conf", port, f"    root {www};\n"), port


def front_caddyfile(scratch: Path, port: int, upstream: int) -> Path:
    path = scratch / "front.Caddyfile"
    path.write_text(
        "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}\n"
        f":{port} {{\n\treverse_proxy 127.0.0.1:{upstream}\n}}\n"
    )
    return path


def check(server: str, port: int, body: str) -> None:
    for _ in range(2):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", f"/{body}.bin")
            r = c.getresponse()
            status, data = r.status, r.read()
        finally:
            c.close()
        if status != 200 or len(data) != BODIES[body]:
            raise BenchError(f"{server} /{body}.bin: status {status}, {len(data)} bytes")


@dataclass
class Results:
    free: dict[tuple[str, str], list[Throughput]]
    capped: dict[tuple[str, str], list[Throughput]]
    latency: dict[tuple[str, str], list[Latency]]
    rates: dict[str, int]


def workload(body: str) -> Workload:
    return Workload(body, body, "", f"/{body}.bin")


def throughput_round(rnd: int, scratch: Path, upstream: int, seconds: int, res: Results) -> None:
    for server in SERVERS:
        port = free_port()
        config = front_caddyfile(scratch, port, upstream)
        with running(server, config, [port], scratch) as front:
            for body in BODIES:
                check(server, port, body)
                t = measure_throughput(front.pid, port, workload(body), seconds)
                res.free.setdefault((server, body), []).append(t)
                print(
                    f"round {rnd} free   {server:9} {body:4} {t.rps:9.0f} req/s "
                    f"{t.cpu_us_per_req:6.1f} us/req errors {t.errors}",
                    flush=True,
                )
        with (
            cpu_budget(BUDGET) as group,
            running(server, config, [port], scratch, cgroup=group) as front,
        ):
            for body in BODIES:
                check(server, port, body)
                t = measure_throughput(front.pid, port, workload(body), seconds)
                res.capped.setdefault((server, body), []).append(t)
                print(
                    f"round {rnd} capped {server:9} {body:4} {t.rps:9.0f} req/s errors {t.errors}",
                    flush=True,
                )


def latency_round(
    rnd: int, scratch: Path, upstream: int, seconds: int, realtime: bool, res: Results
) -> None:
    for server in SERVERS:
        port = free_port()
        config = front_caddyfile(scratch, port, upstream)
        with running(server, config, [port], scratch, realtime=realtime):
            for body in BODIES:
                check(server, port, body)
                lat = measure_latency(
                    port, workload(body), res.rates[body], seconds, scratch, realtime
                )
                res.latency.setdefault((server, body), []).append(lat)
                print(
                    f"round {rnd} latency {server:9} {body:4} at {res.rates[body]} req/s: "
                    f"p50 {lat.p50:.3f} p95 {lat.p95:.3f} p99 {lat.p99:.3f} ms "
                    f"failed {lat.failed}",
                    flush=True,
                )


def floor_round(
    rnd: int, scratch: Path, upstream: int, seconds: int, realtime: bool, res: Results
) -> None:
    """h2load straight to the upstream at the same rates, no front at all: the p95 of CPU 0's
    share of the work (h2load and nginx), which a front pays on top of its own."""
    for body in BODIES:
        lat = measure_latency(upstream, workload(body), res.rates[body], seconds, scratch, realtime)
        res.latency.setdefault((NO_FRONT, body), []).append(lat)
        print(
            f"round {rnd} latency {NO_FRONT:9} {body:4} at {res.rates[body]} req/s: "
            f"p50 {lat.p50:.3f} p95 {lat.p95:.3f} p99 {lat.p99:.3f} ms failed {lat.failed}",
            flush=True,
        )


def run(args: argparse.Namespace, scratch: Path) -> Results:
    res = Results({}, {}, {}, {})
    config, upstream = nginx_upstream(scratch)
    with running("nginx", config, [upstream], scratch, cpu=LOADGEN_CPU) as nginx:
        for rnd in range(1, args.rounds + 1):
            throughput_round(rnd, scratch, upstream, args.duration, res)
        for body in BODIES:
            caddy_rps = median([t.rps for t in res.free[("caddy", body)]])
            res.rates[body] = max(LATENCY_CLIENTS, min(RATE_CAP, int(caddy_rps * RATE_SHARE)))
        for rnd in range(1, args.rounds + 1):
            latency_round(rnd, scratch, upstream, args.latency_duration, args.realtime, res)
            floor_round(rnd, scratch, upstream, args.latency_duration, args.realtime, res)
        if not nginx.alive():
            raise BenchError(f"nginx exited: {nginx.last_log_line()}")
    return res


def goal(value: float | None, limit: float, at_least: bool) -> str:
    if value is None:
        return "—"
    met = value >= limit if at_least else value <= limit
    return f"{fmt_ratio(value)} ({'met' if met else 'not met'})"


def body_title(body: str) -> str:
    return body.upper().replace("K", " KB")


def report(res: Results, args: argparse.Namespace) -> str:
    def med(samples: list[float]) -> float:
        return median(samples)

    rows = []
    verdicts = []
    for body in BODIES:
        per: dict[str, dict[str, float]] = {}
        for server in SERVERS:
            free = res.free[(server, body)]
            lat = res.latency[(server, body)]
            per[server] = {
                "rps": med([t.rps for t in free]),
                "capped": med([t.rps for t in res.capped[(server, body)]]),
                "cpu": med([t.cpu_us_per_req for t in free]),
                "p50": med([s.p50 for s in lat]),
                "p95": med([s.p95 for s in lat]),
                "p99": med([s.p99 for s in lat]),
            }
            errors = sum(t.errors for t in free + res.capped[(server, body)])
            failed = sum(s.failed for s in lat)
            p = per[server]
            rows.append(
                [
                    server,
                    body_title(body),
                    fmt_num(p["rps"]),
                    fmt_num(p["capped"]),
                    fmt_num(p["cpu"], 1),
                    f"{res.rates[body]:,}",
                    f"{p['p50']:.3f} / {p['p95']:.3f} / {p['p99']:.3f}",
                    f"{errors} / {failed}",
                ]
            )
        zs, caddy = per["zeroserve"], per["caddy"]
        floor_p95 = med([s.p95 for s in res.latency[(NO_FRONT, body)]])
        verdicts.append(
            f"- {body_title(body)}: requests/s at the same {BUDGET:.0%} of a core "
            f"{goal(ratio(zs['capped'], caddy['capped']), 2, True)}, free "
            f"{fmt_ratio(ratio(zs['rps'], caddy['rps']))}; CPU per request "
            f"{goal(ratio(zs['cpu'], caddy['cpu']), 0.5, False)}; p95 at "
            f"{res.rates[body]:,} req/s {goal(ratio(zs['p95'], caddy['p95']), 0.5, False)}; "
            f"with no front at all the p95 is {floor_p95:.3f} ms, "
            f"{fmt_ratio(ratio(floor_p95, caddy['p95']))} of Caddy's"
        )
    table = md_table(
        [
            "front",
            "body",
            "req/s (free)",
            f"req/s at {BUDGET:.0%} of a core",
            "CPU µs/request",
            "fixed rate req/s",
            "p50 / p95 / p99 ms",
            "errors wrk / h2load",
        ],
        rows,
    )
    sched = "under SCHED_RR (`chrt --rr 10`)" if args.realtime else "without SCHED_RR"
    return (
        f"Command: `{command_line()}`\n\n{machine_line()}, "
        f"{tool_version([nginx_binary(), '-v'])}\n\n"
        f"Upstream: nginx (one process, keep-alive) on CPU 0 with the load generators; front on "
        f"CPU 1; `wrk -t1 -c{CONNECTIONS} -d{args.duration}s`; latency `h2load --h1 "
        f"-c{LATENCY_CLIENTS}` for {args.latency_duration} s at half of Caddy's free req/s, "
        f"front and h2load {sched}; median of {args.rounds} rounds.\n\n"
        f"{table}\n\n"
        "Goals (zeroserve/Caddy): requests/s at least 2x (judged with both fronts at the same "
        "CPU share, where the front is the bottleneck; free, CPU 0 running wrk and nginx "
        "bounds both), CPU per request at most 0.5x, p95 at a fixed rate at most 0.5x. "
        "The no-front figure, for reference, is h2load straight to nginx at the same rate in the "
        "same rounds: what h2load and nginx cost on CPU 0 without a front (a front changes that "
        "cost only through how it uses its upstream connections).\n\n" + "\n".join(verdicts) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=5, help="wrk seconds per run")
    parser.add_argument("--latency-duration", type=int, default=5, help="h2load seconds")
    parser.add_argument(
        "--no-realtime", dest="realtime", action="store_false", help="no SCHED_RR for latency"
    )
    args = parse_args(parser, default_rounds=3)
    if not 1 <= args.duration <= 60 or not 1 <= args.latency_duration <= 60:
        fail("--duration and --latency-duration must be between 1 and 60 seconds")
    try:
        require_tools("wrk", "h2load", "taskset", "chrt")
        os.sched_setaffinity(0, {int(LOADGEN_CPU)})
        with tempfile.TemporaryDirectory(prefix="zs-proxy-bench-") as tmp:
            started = time.monotonic()
            res = run(args, Path(tmp))
            print(f"measured in {time.monotonic() - started:.0f} s", flush=True)
            body = report(res, args)
    except (BenchError, OSError, http.client.HTTPException) as exc:
        fail(str(exc))
    publish(body, args, "proxy", "reverse_proxy: zeroserve vs Caddy to a local nginx")


if __name__ == "__main__":
    main()
