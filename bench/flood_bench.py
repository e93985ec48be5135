"""Edge layers under flood, and their reload timings.

A hub namespace (the appliance) serves one Caddyfile whose `abort` denies the attacker's
/24; a client and an attacker namespace reach it over their own veth pairs. For zeroserve
(the agent attaches XDP to the hub's interfaces) and Caddy 2.11.7, in one run and the same
topology, the legit client's req/s and p95 are measured with no flood, during an HTTP
connection flood (wrk from the attacker), during a SYN flood (hping3, bounded count) and
during a SYN flood from spoofed sources the Caddyfile allows (with `--appliance-config` turning
on `syn_cookies`, XDP answers those with cookies).
Then, for zeroserve alone: map-only reloads (the denied range moves), program swaps (an
IPv6 range adds a feature, so the XDP program is recompiled) under load, and the agent's RSS.

Server on core 1 under a CPU cap (the bottleneck), every client and attacker on core 0
(the attackers at niceness 10), so both servers meet the same contention; each figure is
the median of --rounds rounds, the servers alternating which goes first.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchlib import (
    LOADGEN_CPU,
    SERVER_CPU,
    BenchError,
    Server,
    child_env,
    command_line,
    cpu_budget,
    fail,
    fmt_num,
    machine_line,
    md_table,
    median,
    on_cpu,
    parse_args,
    parse_wrk,
    percentile,
    publish,
    require_tools,
    rss_kib,
    server_argv,
    tool_version,
)
from zeroserve.datapath import attach, libbpf

PORT, ADMIN = 8080, 2999
FLOODS = ("none", "http", "syn", "spoofed")
LABELS = {
    "none": "no flood",
    "http": "HTTP connection flood",
    "syn": "SYN flood",
    "spoofed": "SYN flood, spoofed allowed sources",
}
LEGIT_CONNECTIONS = 8
FLOOD_RATE = 5000  # new connections a second in the HTTP connection flood
FLOOD_OPEN = 512  # connections it keeps open before it sends a request on one and drops it
SYN_INTERVAL_US = 20  # hping3 -i: at most 50,000 SYNs a second
RELOADS = 20
CADDYFILE = """\
{{
\tadmin 127.0.0.1:{admin}
}}

:{port} {{
\t@blocked remote_ip {denied}
\tabort @blocked
\trespond "ok"
}}
"""
# The HTTP connection flood. wrk gives up at once when its first connection fails (as
# every one does behind XDP), so this opens connections at a fixed rate instead, each
# sending a request when it is dropped to make room, whether or not it connected.
HTTP_FLOOD = """
import collections, socket, sys, time
host, port, seconds, rate, keep = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6])
request = b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
held = collections.deque()
tick = start = time.monotonic()
while tick < start + seconds:
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    held.append(s)
    if len(held) > keep:
        old = held.popleft()
        try:
            old.send(request)
        except OSError:
            pass
        old.close()
    tick += 1 / rate
    time.sleep(max(0.0, tick - time.monotonic()))
"""
# wrk's own summary has no p95; this prints it (µs) after the usual report.
P95_LUA = """\
done = function(summary, latency, requests)
  io.write(string.format("p95_us %d\\n", latency:percentile(95)))
end
"""


def in_ns(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def connect(ns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection made from inside ns (the socket keeps its namespace)."""
    with attach.in_netns(ns):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def admin(ns: str, method: str, path: str, body: bytes = b"", ctype: str = "") -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", ADMIN, timeout=120)
    conn.sock = connect(ns, "127.0.0.1", ADMIN, 120)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise BenchError(f"admin {method} {path}: {resp.status} {data[:300]!r}")
    return data


@contextmanager
def xdp_tx_peers(star: attach.Star) -> Iterator[None]:
    """An XDP program that passes everything on each spoke's end: a veth drops the frames
    its peer sends back with XDP_TX (zeroserve's cookie SYN-ACKs) unless it runs one."""
    fd = libbpf.xdp_pass_program()
    try:
        for spoke in star.spokes.values():
            attach.attach_xdp(spoke.index, fd, attach.XdpMode.NATIVE, ns=spoke.ns)
        yield
    finally:
        os.close(fd)


@contextmanager
def serving(
    name: str,
    star: attach.Star,
    config: Path,
    scratch: Path,
    appliance: Path | None,
    cgroup: Path | None = None,
) -> Iterator[Server]:
    """name's server in the hub, on SERVER_CPU, up once the client gets an answer, then
    moved into cgroup (if given); zeroserve with the appliance config (if given)."""
    argv = server_argv(name, config)
    if name == "zeroserve" and appliance is not None:
        argv += ["--appliance-config", str(appliance)]
    argv = in_ns(star.hub, on_cpu(SERVER_CPU, argv))
    log = scratch / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=child_env(scratch)
        )
    server = Server(name, proc, log)
    client = star.spokes["client"]
    try:
        deadline = time.monotonic() + 60
        while True:
            if not server.alive():
                raise BenchError(f"{name} exited: {server.last_log_line()}")
            try:
                connect(client.ns, client.hub_addr, PORT, 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} did not answer in 60 s") from None
                time.sleep(0.1)
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(server.pid))
        yield server
    finally:
        server.stop()


def wrk_argv(ns: str, url: str, seconds: float, connections: int, lua: Path) -> list[str]:
    """The legit client, under SCHED_RR: the attackers share its core, and must not decide
    its numbers by taking its CPU (on real links they are other machines)."""
    wrk = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(lua), url]
    return in_ns(ns, on_cpu(LOADGEN_CPU, wrk, realtime=True))


def legit(star: attach.Star, seconds: int, lua: Path) -> tuple[float, float, int]:
    """The client's req/s, p95 (ms) and errors over one wrk run."""
    client = star.spokes["client"]
    url = f"http://{client.hub_addr}:{PORT}/"
    out = subprocess.run(
        wrk_argv(client.ns, url, seconds, LEGIT_CONNECTIONS, lua),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip()}")
    totals = parse_wrk(out.stdout)
    p95 = next(ln for ln in out.stdout.splitlines() if ln.startswith("p95_us"))
    return totals.rps, int(p95.split()[1]) / 1000, totals.errors


def flood_argv(kind: str, star: attach.Star, seconds: int) -> list[str]:
    attacker = star.spokes["attacker"]
    if kind == "http":
        flood = [sys.executable, "-c", HTTP_FLOOD, attacker.hub_addr, str(PORT), str(seconds)]
        argv = in_ns(attacker.ns, on_cpu(LOADGEN_CPU, [*flood, str(FLOOD_RATE), str(FLOOD_OPEN)]))
    else:
        count = seconds * 1_000_000 // SYN_INTERVAL_US
        hping = ["hping3", "-q", "-S", "-p", str(PORT), "-c", str(count)]
        if kind == "spoofed":
            # Random sources: almost none in the denied /24, none of them answering.
            hping.append("--rand-source")
        argv = in_ns(
            attacker.ns,
            on_cpu(LOADGEN_CPU, [*hping, "-i", f"u{SYN_INTERVAL_US}", attacker.hub_addr]),
        )
    return ["nice", "-n", "10", *argv]


def measure(star: attach.Star, flood: str, seconds: int, lua: Path) -> tuple[float, float, int]:
    """The legit client's figures, with `flood` (one of FLOODS) running meanwhile."""
    if flood == "none":
        return legit(star, seconds, lua)
    attack = subprocess.Popen(
        flood_argv(flood, star, seconds + 2),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)  # the flood is on before the measurement starts
        return legit(star, seconds, lua)
    finally:
        if attack.poll() is None:
            os.kill(attack.pid, signal.SIGKILL)
        attack.wait()


def xdp_counts(star: attach.Star) -> tuple[int, int]:
    """Packets zeroserve's XDP rules dropped, and SYN-ACKs it sent with cookies, so far."""
    edge = json.loads(admin(star.hub, "GET", "/zeroserve/status"))["edge"]
    dropped = sum(r["dropped"]["packets"] for r in edge["rules"] if "dropped" in r)
    return dropped, sum(c["packets"] for c in edge["syncookies"])


def flood_rounds(
    star: attach.Star, config: Path, scratch: Path, args: argparse.Namespace, lua: Path
) -> tuple[dict, dict]:
    """name -> flood -> [(rps, p95, errors)], and zeroserve's XDP (drops, SYN-ACKs) per flood."""
    results: dict[str, dict[str, list]] = {n: {} for n in ("zeroserve", "caddy")}
    counts: dict[str, list[tuple[int, int]]] = {}
    seconds = args.duration
    for r in range(args.rounds):
        order = ("zeroserve", "caddy") if r % 2 == 0 else ("caddy", "zeroserve")
        for name in order:
            with (
                cpu_budget(args.budget) as group,
                serving(name, star, config, scratch, args.appliance_config, group),
            ):
                legit(star, 1, lua)  # warm-up
                # The conditions rotate too, so none always runs first after the warm-up.
                turn = r % len(FLOODS)
                for flood in FLOODS[turn:] + FLOODS[:turn]:
                    before = xdp_counts(star) if name == "zeroserve" else (0, 0)
                    results[name].setdefault(flood, []).append(measure(star, flood, seconds, lua))
                    if name == "zeroserve":
                        after = xdp_counts(star)
                        counts.setdefault(flood, []).append(
                            (after[0] - before[0], after[1] - before[1])
                        )
    return results, counts


def reloads(
    star: attach.Star, config: Path, scratch: Path, appliance: Path | None, lua: Path
) -> dict:
    """Map-only and program-swap reloads of zeroserve under the client's load."""
    base = config.read_text()
    moved = base.replace("198.18.2.0/24", "198.18.9.0/24")
    dual = base.replace("198.18.2.0/24", "198.18.2.0/24 2001:db8:bad::/48")
    out: dict = {}
    with serving("zeroserve", star, config, scratch, appliance) as server:
        out["rss_start_kib"] = rss_kib(server.pid)
        client = star.spokes["client"]
        url = f"http://{client.hub_addr}:{PORT}/"
        load = subprocess.Popen(
            wrk_argv(client.ns, url, 3600, LEGIT_CONNECTIONS, lua),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(1)
            for kind, other in (("maps", moved), ("programs", dual)):
                posts, commits = [], []
                for n in range(RELOADS):
                    body = (other if n % 2 == 0 else base).encode()
                    start = time.perf_counter()
                    admin(star.hub, "POST", "/load", body, "text/caddyfile")
                    posts.append((time.perf_counter() - start) * 1000)
                    edge = json.loads(admin(star.hub, "GET", "/zeroserve/status"))["edge"]
                    if edge["last_reload"]["kind"] != kind:
                        raise BenchError(f"expected a {kind} reload, got {edge['last_reload']}")
                    commits.append(edge["last_reload"]["commit_ms"])
                out[kind] = {"post_ms": posts, "commit_ms": commits}
            time.sleep(1)
        finally:
            load.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
            stdout, stderr = load.communicate(timeout=30)
        totals = parse_wrk(stdout)
        out["load"] = totals
        out["rss_end_kib"] = rss_kib(server.pid)
    return out


def report(args: argparse.Namespace, flood: tuple[dict, dict], reload: dict) -> str:
    results, counts = flood
    rows = []
    verdicts = []
    for name in ("zeroserve", "caddy"):
        base_rps = median([m[0] for m in results[name]["none"]])
        base_p95 = median([m[1] for m in results[name]["none"]])
        for kind in FLOODS:
            rps = median([m[0] for m in results[name][kind]])
            p95 = median([m[1] for m in results[name][kind]])
            errors = sum(m[2] for m in results[name][kind])
            xdp = counts[kind] if name == "zeroserve" else None
            d_rps, d_p95 = (rps / base_rps - 1) * 100, (p95 / base_p95 - 1) * 100
            rows.append(
                [
                    name,
                    LABELS[kind],
                    fmt_num(rps),
                    f"{d_rps:+.1f}%" if kind != "none" else "",
                    f"{p95:.2f}",
                    f"{d_p95:+.1f}%" if kind != "none" else "",
                    str(errors),
                    fmt_num(median([c[0] for c in xdp])) if xdp else "—",
                    fmt_num(median([c[1] for c in xdp])) if xdp else "—",
                ]
            )
            if name == "zeroserve" and kind != "none":
                ok = d_p95 < 10 and d_rps > -5
                verdicts.append(
                    f"{kind}: p95 {d_p95:+.1f}%, req/s {d_rps:+.1f}% → {'met' if ok else 'missed'}"
                )
    table = md_table(
        [
            "server",
            "condition",
            "legit req/s",
            "vs no flood",
            "legit p95 ms",
            "vs no flood",
            "legit errors",
            "XDP drops",
            "XDP SYN-ACKs",
        ],
        rows,
    )
    maps, progs = reload["maps"], reload["programs"]
    load = reload["load"]
    reload_rows = [
        [
            "map-only (denied range moves)",
            f"{percentile(maps['commit_ms'], 50):.2f} / {percentile(maps['commit_ms'], 95):.2f}",
            f"{percentile(maps['post_ms'], 50):.0f} / {percentile(maps['post_ms'], 95):.0f}",
        ],
        [
            "program swap (IPv6 range: recompile)",
            f"{percentile(progs['commit_ms'], 50):.2f} / {percentile(progs['commit_ms'], 95):.2f}",
            f"{percentile(progs['post_ms'], 50):.0f} / {percentile(progs['post_ms'], 95):.0f}",
        ],
    ]
    syn_rate = 1_000_000 // SYN_INTERVAL_US
    start_mb, end_mb = reload["rss_start_kib"] / 1024, reload["rss_end_kib"] / 1024
    return f"""\
`{command_line()}` — {machine_line()}; wrk {tool_version(["wrk", "--version"]).split()[1]},
{tool_version(["hping3", "--version"]).splitlines()[0]}.

Topology: network namespaces, a hub serving the Caddyfile below on `:{PORT}` and two spokes
on veth pairs (client 198.18.1.2, attacker 198.18.2.2). The server runs on core 1, capped at
{args.budget:.0%} of it (cgroup CPU bandwidth) so that it, not the one-thread client, is the
bottleneck (zeroserve with one engine worker; the agent attaches XDP native to both hub
interfaces; the spokes' ends run an XDP program that passes everything, without which
a veth drops what its peer sends back with XDP_TX). On veth, XDP and the stack process a
packet on the sending core, so the
attackers' packets cost core 0 for both servers; what lands on the server's budget is what
gets past the layer that drops it (for Caddy: accepting and aborting). The legit
client (`wrk -t1 -c{LEGIT_CONNECTIONS}`, keep-alive, {args.duration} s, p95 from wrk's
histogram, under SCHED_RR so the attackers cannot take its CPU) on core 0, the attackers on
core 0 at niceness 10: the HTTP connection flood opens
{FLOOD_RATE:,} connections a second to the denied site, keeps {FLOOD_OPEN} open and sends a
request on each before dropping it; the SYN flood is `hping3 -S -i u{SYN_INTERVAL_US}` (at
most {syn_rate:,} SYNs/s, bounded count). Both come from the denied range; the same SYN
flood with `--rand-source` comes from spoofed sources the Caddyfile allows (SYN-ACKs go
nowhere). Every flood starts 1 s before the measurement.
Medians of {args.rounds} rounds; "XDP drops" is what zeroserve's rule counter rose by during
the run, "XDP SYN-ACKs" what its SYN cookie counter rose by (`zeroserve status`).
{appliance_text(args.appliance_config)}
```
{CADDYFILE.format(admin=ADMIN, port=PORT, denied="198.18.2.0/24").strip()}
```

{table}

Goal for zeroserve (legit p95 rises < 10%, req/s falls < 5% under a flood): {"; ".join(verdicts)}.

**Reloads** (zeroserve only, {RELOADS} of each through `POST /load` with a Caddyfile, while
the client keeps its load on): the edge commit is what `zeroserve status` reports for the
map writes or the program swap; the round trip is the whole `/load` (adapt, plan, compile
aside, engine swap, edge commit).

{md_table(["reload", "edge commit p50 / p95 ms", "whole /load p50 / p95 ms"], reload_rows)}

Legit requests across the {2 * RELOADS} reloads: {load.requests:,} completed, {load.errors}
failed (connect {load.connect_errors}, broken {load.broken}, timeouts {load.timeouts}, non-2xx
{load.bad_status}). Agent RSS (the engine's workers included): {start_mb:.1f} MB after
loading, {end_mb:.1f} MB after the reloads (target ≤ 100 MB; the compiler runs in a child
that exits).
"""


def appliance_text(appliance: Path | None) -> str:
    """What the report says of the appliance config zeroserve ran with."""
    if appliance is None:
        return (
            "zeroserve ran with no appliance config: SYNs past the deny rule meet the kernel's\n"
            "own SYN cookies (tcp_syncookies=1) once a listener's SYN queue is full, as Caddy's do."
        )
    return (
        "zeroserve ran with this appliance config (`--appliance-config`); Caddy's SYNs meet\n"
        "the kernel's own SYN cookies (tcp_syncookies=1) once its SYN queue is full:\n\n"
        f"```toml\n{appliance.read_text().strip()}\n```\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument(
        "--budget", type=float, default=0.25, help="server's share of its core under floods"
    )
    parser.add_argument(
        "--appliance-config",
        type=Path,
        default=None,
        help="appliance config zeroserve runs with (e.g. bench/flood_appliance.toml)",
    )
    args = parse_args(parser, default_rounds=3)
    if os.geteuid() != 0:
        fail("needs root: it makes network namespaces and loads XDP programs")
    require_tools("wrk", "hping3", "taskset", "chrt", "ip", "nice")
    if args.appliance_config is not None:
        if not args.appliance_config.is_file():
            fail(f"--appliance-config: no file {args.appliance_config}")
        args.appliance_config = args.appliance_config.resolve()
    with tempfile.TemporaryDirectory(prefix="zs-flood-") as tmp:
        scratch = Path(tmp)
        config = scratch / "Caddyfile"
        config.write_text(CADDYFILE.format(admin=ADMIN, port=PORT, denied="198.18.2.0/24"))
        lua = scratch / "p95.lua"
        lua.write_text(P95_LUA)
        with (
            attach.scratch_star(["client", "attacker"], prefix="zs-bench") as star,
            xdp_tx_peers(star),
        ):
            flood = flood_rounds(star, config, scratch, args, lua)
            reload = reloads(star, config, scratch, args.appliance_config, lua)
    body = report(args, flood, reload)
    publish(body, args, "edge", "Edge layers")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        fail(str(exc))
