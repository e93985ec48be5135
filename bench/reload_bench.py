"""Config reloads under load: 100 reloads alternating two configs while wrk keeps requesting.

Both servers get the same two Caddyfiles (A, then B, A, B, ...), which differ in the response
body and one extra route, so every reload is a real change. A reload is a POST of
the Caddyfile to the admin endpoint's `/load` (`Content-Type: text/caddyfile`), which is what
`caddy reload` does after adapting; zeroserve's agent serves the same API. After each reload
a fresh connection checks that the new config answers. Meanwhile
`wrk -t1 -c32` runs until the reloads are done; its failed requests (timeouts, non-2xx/3xx)
and broken connections (read/write errors: resets, or closes mid-request) are counted.

Pinning as in http_bench.py: server on CPU 1, wrk and this script on CPU 0.

    python bench/reload_bench.py [--rounds 3] [--reloads 100] [--nice N] [--no-doc]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    LOADGEN_CPU,
    BenchError,
    command_line,
    fail,
    fmt_num,
    free_port,
    machine_line,
    md_table,
    median,
    on_cpu,
    parse_args,
    parse_wrk,
    percentile,
    publish,
    require_tools,
    running,
    zeroserve_binary,
)

SERVERS = ("caddy", "zeroserve")
CONNECTIONS = 32
PAUSE = 0.02

CONFIG = """\
{{
	admin 127.0.0.1:{admin}
	auto_https off
	default_bind 127.0.0.1
}}

:{port} {{
{extra}	respond "config {name}"
}}
"""
EXTRA_B = """\
	handle /b-only {
		respond "only in B" 200
	}
"""


def write_configs(scratch: Path, port: int, admin: int) -> dict[str, Path]:
    paths = {}
    for name, extra in (("A", ""), ("B", EXTRA_B)):
        path = scratch / f"Caddyfile.{name}"
        path.write_text(CONFIG.format(admin=admin, port=port, name=name, extra=extra))
        paths[name] = path
    return paths


def admin_load(admin_port: int, config: Path) -> str | None:
    """POST a Caddyfile to /load; None on success, else the error."""
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=30)
    try:
        conn.request(
            "POST", "/load", body=config.read_bytes(), headers={"Content-Type": "text/caddyfile"}
        )
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return str(exc)
    finally:
        conn.close()
    return None if resp.status == 200 else f"{resp.status}: {body[:200]!r}"


# How each server takes a new config. Both speak Caddy's admin API today; a server with
# another mechanism plugs in here.
RELOADERS: dict[str, Callable[[int, Path], str | None]] = {
    "caddy": admin_load,
    "zeroserve": admin_load,
}


def answers(port: int) -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass
class Round:
    reload_ms: list[float]
    reload_errors: int
    took_effect: int
    requests: int
    rps: float
    failed: int
    broken: int
    connect_errors: int


def one_round(name: str, reloads: int, scratch: Path) -> Round:
    port, admin = free_port(), free_port()
    configs = write_configs(scratch, port, admin)
    reload = RELOADERS[name]
    with running(name, configs["A"], [port, admin], scratch):
        load = subprocess.Popen(
            on_cpu(
                LOADGEN_CPU,
                [
                    "wrk",
                    "-t1",
                    f"-c{CONNECTIONS}",
                    f"-d{reloads + 60}s",
                    f"http://127.0.0.1:{port}/",
                ],
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            time.sleep(1)
            times, errors, effective = [], 0, 0
            for i in range(reloads):
                target = "B" if i % 2 == 0 else "A"
                start = time.perf_counter()
                error = reload(admin, configs[target])
                times.append((time.perf_counter() - start) * 1000)
                if error is not None:
                    errors += 1
                    print(f"    reload {i + 1} failed: {error}", flush=True)
                elif answers(port) == f"config {target}":
                    effective += 1
                time.sleep(PAUSE)
            time.sleep(0.5)
        finally:
            if load.poll() is None:
                load.send_signal(signal.SIGINT)  # wrk prints its totals on SIGINT
            try:
                text = load.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait()
                raise BenchError("wrk did not stop on SIGINT") from None
    totals = parse_wrk(text)
    return Round(
        times,
        errors,
        effective,
        totals.requests,
        totals.rps,
        totals.timeouts + totals.bad_status,
        totals.broken,
        totals.connect_errors,
    )


def available(name: str, scratch: Path) -> str | None:
    """Why `name` cannot be measured, or None."""
    if name == "zeroserve" and zeroserve_binary() is None:
        return "no .venv/bin/zeroserve (run `make setup`)"
    port, admin = free_port(), free_port()
    configs = write_configs(scratch, port, admin)
    try:
        with running(name, configs["A"], [port, admin], scratch):
            error = RELOADERS[name](admin, configs["B"])
            if error is None and answers(port) != "config B":
                error = "reload accepted but config B does not answer"
    except BenchError as exc:
        error = str(exc)
    return error


def report(
    args: argparse.Namespace, rounds: dict[str, list[Round]], missing: dict[str, str]
) -> str:
    rows = []
    for name in SERVERS:
        if name in missing:
            rows.append([name, f"not measured: {missing[name]}"] + ["—"] * 6)
            continue
        rs = rounds[name]
        times = [t for r in rs for t in r.reload_ms]
        rows.append(
            [
                name,
                f"{median([args.reloads - r.reload_errors for r in rs]):.0f} / {args.reloads}",
                f"{median([r.took_effect for r in rs]):.0f} / {args.reloads}",
                " / ".join(f"{percentile(times, q):.1f}" for q in (50, 95, 99)),
                f"{fmt_num(median([r.rps for r in rs]))} "
                f"({fmt_num(median([r.requests for r in rs]))})",
                ", ".join(str(r.failed) for r in rs),
                ", ".join(str(r.broken) for r in rs),
                ", ".join(str(r.connect_errors) for r in rs),
            ]
        )
    table = md_table(
        [
            "server",
            "reloads accepted (median)",
            "took effect (median)",
            "reload time p50 / p95 / p99 ms (all rounds)",
            "req/s during reloads (requests), median",
            "failed requests per round",
            "broken connections per round",
            "connect errors per round",
        ],
        rows,
    )
    return (
        f"Command: `{command_line()}`\n\n"
        f"Machine: {machine_line()}. {args.rounds} rounds of {args.reloads} reloads "
        f"alternating two Caddyfiles (A → B → A ...; B adds a route), each a POST of the "
        f"Caddyfile to the admin `/load` with `Content-Type: text/caddyfile`, "
        f"{PAUSE * 1000:.0f} ms apart, while `taskset -c 0 wrk -t1 -c{CONNECTIONS}` requests"
        ' `GET /` until the reloads are done. "Took effect": a fresh connection after the '
        "reload gets the new body. Failed requests = wrk timeouts + non-2xx/3xx; broken "
        "connections = wrk read/write errors: resets, or a keep-alive connection closed by the "
        "server while wrk's next request is on it (wrk never retries, so that request is "
        "lost to it; clients that retry idempotent requests would resend it). "
        "Server pinned to CPU 1.\n\n"
        f"{table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reloads", type=int, default=100)
    args = parse_args(parser, default_rounds=3)
    if not 1 <= args.reloads <= 1000:
        fail("--reloads must be between 1 and 1000")
    try:
        require_tools("wrk", "taskset")
        os.sched_setaffinity(0, {int(LOADGEN_CPU)})
        with tempfile.TemporaryDirectory(prefix="zs-reload-bench-") as tmp:
            scratch = Path(tmp)
            missing = {n: why for n in SERVERS if (why := available(n, scratch)) is not None}
            if "caddy" in missing:
                raise BenchError(f"caddy cannot be reloaded: {missing['caddy']}")
            rounds: dict[str, list[Round]] = {n: [] for n in SERVERS if n not in missing}
            for r in range(args.rounds):
                for name in SERVERS if r % 2 == 0 else reversed(SERVERS):
                    if name in missing:
                        continue
                    result = one_round(name, args.reloads, scratch)
                    rounds[name].append(result)
                    print(
                        f"  round {r + 1} {name:>9}: {result.took_effect}/{args.reloads} "
                        f"took effect, reload p50 {percentile(result.reload_ms, 50):.1f} ms, "
                        f"{result.requests} requests, failed {result.failed}, broken "
                        f"{result.broken}, connect errors {result.connect_errors}",
                        flush=True,
                    )
            body = report(args, rounds, missing)
    except BenchError as exc:
        fail(str(exc))
    publish(body, args, "reload", "Reloads under load: zeroserve vs Caddy")


if __name__ == "__main__":
    main()
