"""What every benchmark script shares: finding the binaries, starting and stopping servers,
sampling /proc, measuring a child process, small statistics and writing docs/BENCHMARKS.md.

Servers are started as separate processes and always stopped by their PID (SIGTERM, then
SIGKILL), whatever happens in between: scripts start them through the `running` context
manager for that.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The benches pick ports as the tests do (re-exported for the scripts).
sys.path.insert(0, str(REPO))
from tests.support import free_port as free_port  # noqa: E402

DOC = REPO / "docs" / "BENCHMARKS.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The load generator and the server under test each get a core of their own, so neither
# steals the other's CPU; the same split applies to Caddy and zeroserve.
LOADGEN_CPU = "0"
SERVER_CPU = "1"
# Round-robin real-time scheduling, for runs that use a fraction of a core (fixed-rate
# latency): other work on the shared machine then cannot decide the tail, and SCHED_RR (not
# FIFO) still time-slices a server's own threads among themselves.
REALTIME = ("chrt", "--rr", "10")


class BenchError(Exception):
    """A benchmark cannot go on (missing binary, server that does not start, ...)."""


def caddy_binary() -> Path:
    """Caddy 2.11.7: the venv's (from `make setup`), else the pre-set-up one."""
    for candidate in (REPO / ".venv" / "bin" / "caddy", Path("/tmp/cv/bin/caddy")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise BenchError("no caddy binary: run `make setup` (expects .venv/bin/caddy)")


def zeroserve_binary() -> Path | None:
    path = REPO / ".venv" / "bin" / "zeroserve"
    return path if path.is_file() and os.access(path, os.X_OK) else None


FLOOR_SERVER = REPO / "target" / "release" / "examples" / "floor_server"


def build_floor_server() -> Path:
    """Build the floor server (appliance/proxy/examples/floor_server.rs: the engine's ring
    layer answering every read with fixed bytes) before a run, so no build shares a timed
    part; cargo makes it once and reuses it after."""
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    manifest = REPO / "appliance" / "proxy" / "Cargo.toml"
    argv = [cargo, "build", "--quiet", "--release", "--example", "floor_server"]
    argv += ["--manifest-path", str(manifest)]
    env = {**os.environ, "CARGO_TARGET_DIR": str(REPO / "target")}
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode != 0 or not FLOOR_SERVER.is_file():
        raise BenchError(f"building the floor server failed: {out.stderr.strip()[-300:]}")
    return FLOOR_SERVER


def floor_config(path: Path, port: int, answer: bytes) -> Path:
    """Write `path` for the floor server: its port on the first line, then `answer`."""
    path.write_bytes(f"{port}\n".encode() + answer)
    return path


def tool_version(argv: Sequence[str]) -> str:
    """First line a tool prints about its version (some, like wrk, exit non-zero doing so)."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}: apt-get install -y wrk nghttp2-client")


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one; children (servers) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def child_env(home: Path) -> dict[str, str]:
    """Keep Caddy's autosave and storage inside the run's scratch folder, not in /root."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(
        HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data")
    )
    return env


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def last_log_line(self) -> str:
        """The server's last words, usually the error that stopped it."""
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return text[-1].strip() if text else ""

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def wait_port(port: int, server: Server, timeout: float = 60.0) -> None:
    """Until `port` accepts; generous, as zeroserve's start compiles its BPF programs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(
                f"{server.name} exited ({server.proc.returncode}): {server.last_log_line()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{server.name} did not listen on 127.0.0.1:{port} in {timeout:.0f}s")


def nginx_binary() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(path, os.X_OK):
        raise BenchError("no nginx: apt-get install -y nginx-light (tools/setup.sh does)")
    return path


def nginx_config(path: Path, port: int, server: str) -> Path:
    """Write `path`: an nginx.conf for one process in the foreground (no daemon, no master,
    one worker), everything it writes in `path`'s folder, one server on 127.0.0.1:`port` whose
    block holds the directives `server`. Keep-alive is lifted so a client's connections are
    never closed by nginx mid-run."""
    scratch = path.parent
    temp = scratch / "nginx-temp"
    temp.mkdir(exist_ok=True)
    path.write_text(
        f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {scratch}/nginx.pid;\n"
        f"error_log {scratch}/nginx-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "  access_log off;\n"
        f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n"
        "  keepalive_requests 10000000;\n  keepalive_timeout 120s;\n"
        "  default_type application/octet-stream;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n{server}  }}\n"
        "}\n"
    )
    return path


def server_argv(name: str, config: Path, workers: int = 1) -> list[str]:
    """The command serving `config` for `name`: a Caddyfile for "caddy" and "zeroserve", a
    file from `nginx_config` for "nginx", from `floor_config` for "floor".

    Caddy's Go runtime sizes GOMAXPROCS from the CPU affinity mask, so pinned to one core it
    runs one P; zeroserve gets the same single core and one engine worker; nginx one process.
    """
    if name == "nginx":
        # -e: nginx opens its built-in error log before reading the config; keep it in scratch.
        prefix = str(config.parent)
        return [nginx_binary(), "-p", prefix, "-e", f"{prefix}/nginx-error.log", "-c", str(config)]
    if name == "caddy":
        return [str(caddy_binary()), "run", "--config", str(config), "--adapter", "caddyfile"]
    if name == "floor":
        return [str(FLOOR_SERVER), str(config)]
    zs = zeroserve_binary()
    if zs is None:
        raise BenchError("no .venv/bin/zeroserve: run `make setup`")
    return [
        str(zs),
        "run",
        "--config",
        str(config),
        "--adapter",
        "caddyfile",
        "--workers",
        str(workers),
    ]


def on_cpu(cpus: str, argv: Sequence[str], realtime: bool = False) -> list[str]:
    """`argv` pinned to `cpus`, under SCHED_RR if `realtime`; both wrappers exec, so the
    PID is the command's own."""
    return ["taskset", "-c", cpus, *(REALTIME if realtime else ()), *argv]


CGROUP_ROOT = Path("/sys/fs/cgroup")


@contextmanager
def cpu_budget(share: float) -> Iterator[Path]:
    """A cgroup whose processes together get at most `share` of one core (CFS bandwidth).

    cgroup v2 (`cpu.max`) or v1's cpu controller (`cpu.cfs_quota_us`). A 10 ms period keeps
    the throttling fine-grained. The group is removed afterwards; it must be empty by then.
    """
    period = 10_000
    quota = max(1000, int(period * share))
    v2 = (CGROUP_ROOT / "cgroup.controllers").exists()
    parent = CGROUP_ROOT if v2 else CGROUP_ROOT / "cpu"
    group = parent / f"zeroserve-bench-{os.getpid()}"
    try:
        if v2:
            (CGROUP_ROOT / "cgroup.subtree_control").write_text("+cpu")
        group.mkdir()
        if v2:
            (group / "cpu.max").write_text(f"{quota} {period}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
    except OSError as exc:
        if group.exists():
            group.rmdir()
        raise BenchError(f"cannot make a CPU-limited cgroup under {parent}: {exc}") from None
    try:
        yield group
    finally:
        group.rmdir()


@contextmanager
def running(
    name: str,
    config: Path,
    ports: Sequence[int],
    scratch: Path,
    realtime: bool = False,
    cgroup: Path | None = None,
    cpu: str = SERVER_CPU,
) -> Iterator[Server]:
    """Start a server on `cpu`, wait for its ports, move it into `cgroup` if given, and
    always stop it by PID afterwards."""
    argv = on_cpu(cpu, server_argv(name, config), realtime)
    log = scratch / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=child_env(scratch),
            cwd=scratch,
        )
    server = Server(name, proc, log)
    try:
        for port in ports:
            wait_port(port, server)
        if cgroup is not None:
            # Once it is up, so a capped start-up does not slow the run; writing the PID to
            # cgroup.procs moves all of the process's threads.
            (cgroup / "cgroup.procs").write_text(str(server.pid))
        yield server
    finally:
        server.stop()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads) from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command name: state is field 3, so utime (14) and stime (15) sit at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


@dataclass
class ChildRun:
    returncode: int
    wall_seconds: float
    cpu_seconds: float
    max_rss_kib: int
    user_seconds: float  # the user-space part of cpu_seconds


def run_measured(
    argv: Sequence[str],
    stdout: Path,
    stderr: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300.0,
) -> ChildRun:
    """Run a child to completion: its wall time, and its own CPU time (with its user part)
    and peak RSS (wait4)."""
    with stdout.open("wb") as out, stderr.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
        )
        # A blocking wait4 returns the moment the child ends; the timer only bounds a hang.
        killer = threading.Timer(timeout, os.kill, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        proc.returncode,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss,
        usage.ru_utime,
    )


@dataclass
class WrkTotals:
    """What wrk reports at the end of a run."""

    requests: int
    rps: float
    connect_errors: int
    broken: int  # read + write errors: resets, or a connection closed with a request on it
    timeouts: int
    bad_status: int  # responses outside 2xx/3xx

    @property
    def errors(self) -> int:
        return self.connect_errors + self.broken + self.timeouts + self.bad_status


WRK_REQUESTS = re.compile(r"(\d+) requests in")
WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk(text: str) -> WrkTotals:
    requests, rps = WRK_REQUESTS.search(text), WRK_RPS.search(text)
    if requests is None or rps is None:
        raise BenchError(f"cannot read wrk output: {text!r}")
    sock = WRK_SOCKET.search(text)
    connect, read, write, timeout = (int(g) for g in sock.groups()) if sock else (0, 0, 0, 0)
    status = WRK_STATUS.search(text)
    return WrkTotals(
        int(requests.group(1)),
        float(rps.group(1)),
        connect,
        read + write,
        timeout,
        int(status.group(1)) if status else 0,
    )


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of raw samples."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of nothing")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def ratio(zeroserve: float | None, caddy: float | None) -> float | None:
    if zeroserve is None or caddy is None or caddy == 0:
        return None
    return zeroserve / caddy


def fmt_num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    # Three significant digits, so a ratio never looks on the other side of a goal's limit.
    return "—" if value is None else f"{value:.3g}x"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The exact command that produced the numbers, relative to the repo root."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(REPO))
    except ValueError:
        shown = str(script)
    python = ".venv/bin/python" if (REPO / ".venv" / "bin" / "python").exists() else "python3"
    return shlex.join([python, shown, *sys.argv[1:]])


def git_commit() -> str:
    """HEAD, marked "+ uncommitted changes" when the product tree differs from it (the engine
    in .venv is built from the working tree)."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "appliance"], capture_output=True
    ).returncode
    return (head or "?") + (" + uncommitted changes" if dirty else "")


def machine_line() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    caddy = tool_version([str(caddy_binary()), "version"]).split()[0]
    load = os.getloadavg()[0]
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), "
        f"Linux {platform.release()}, load average {load:.1f} at the end (the machine is "
        f"shared), every process of the run at niceness {nice}, Caddy {caddy}, "
        f"zeroserve at commit {git_commit()}"
    )


def publish(body: str, args: argparse.Namespace, key: str, title: str) -> None:
    """Print a script's report and, unless --no-doc, put it in its section of docs/BENCHMARKS.md."""
    print(body)
    if not args.no_doc:
        write_section(key, title, body)


def write_section(key: str, title: str, body: str) -> None:
    """Replace (or append) one script's section of docs/BENCHMARKS.md, leaving the others."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    section = f"{start}\n## {title}\n\n{body.strip()}\n{end}"
    text = (
        DOC.read_text()
        if DOC.exists()
        else (
            "# Benchmarks\n\nzeroserve and Caddy 2.11.7 measured side by side in one run of each "
            "script under `bench/`, on the same Caddyfile, on 127.0.0.1. Each figure is the median "
            "of several rounds; ratios are zeroserve/Caddy. Latency is reported as p50/p95/p99, "
            "never as an average. Each section names the exact command that produced it.\n"
        )
    )
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


def parse_args(parser: argparse.ArgumentParser, default_rounds: int) -> argparse.Namespace:
    """The options every script has (--rounds, --nice, --no-doc), checked, then applied.

    `--nice` sets this process's niceness, which the servers and load generators it starts
    inherit: on a shared machine a negative value keeps other work from deciding the result.
    """
    parser.add_argument("--rounds", type=int, default=default_rounds, help="rounds (>= 3)")
    parser.add_argument("--nice", type=int, default=0, help="niceness for the whole run")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs alone")
    args = parser.parse_args()
    if args.rounds < 3:
        fail("--rounds must be at least 3 (medians of fewer rounds mean little)")
    if not -20 <= args.nice <= 19:
        fail("--nice must be between -20 and 19")
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    return args


def fail(message: str) -> None:
    """One line on stderr and exit 1: a benchmark's usage errors are not tracebacks."""
    sys.stderr.write(f"Error: {message}\n")
    raise SystemExit(1)
