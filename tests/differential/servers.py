"""Starting Caddy and zeroserve on one case's Caddyfile, each on its own free loopback port."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import clean_env

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


# The engine alone: one worker (cases run side by side on two shared cores) and no BPF edge
# layers, which allow one agent per machine and would attach to loopback under everyone's
# tests. The edge layers' own differences from Caddy are in docs/COMPATIBILITY.md.
ZEROSERVE_ARGS = ("--workers", "1", "--no-edge")


@dataclass(frozen=True)
class ServerKind:
    """How to run one implementation: `caddy run` or `zeroserve run`, same flags."""

    name: str
    binary: Path
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # extra environment, e.g. for {$VAR} in a Caddyfile

    def argv(self, config: Path) -> list[str]:
        # Absolute, since the child runs in its work dir.
        return [
            str(self.binary.absolute()),
            "run",
            "--config",
            str(config),
            "--adapter",
            "caddyfile",
            *self.extra_args,
        ]


@dataclass
class Running:
    kind: ServerKind
    port: int
    proc: subprocess.Popen | None
    error: str | None  # why it is not serving, if it is not

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# Below Linux's ephemeral range (32768-60999), where this suite's own client sockets and
# everyone's free_port() land, so a port picked here is not taken before the server binds it.
PORT_RANGE = (20000, 32700)


def _pick_port() -> int:
    while True:
        port = random.randrange(*PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, limit: int = 1500) -> str:
    """The last error line of a dead server's output, if it printed one."""
    text = path.read_text(errors="replace") if path.exists() else ""
    errors = [ln for ln in text.splitlines() if "error" in ln.lower()]
    return errors[-1][-limit:] if errors else ""


def _adapt_error(kind: ServerKind, config: Path) -> str:
    """Why the config does not load, from `adapt`: `caddy run` exits silently on such errors."""
    proc = subprocess.run(
        [str(kind.binary), "adapt", "--config", str(config), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines and proc.returncode else "no error message"


def start(kind: ServerKind, caddyfile: str, workdir: Path, attempts: int = 3) -> Running:
    """Start `kind` on a free port with `caddyfile` ({PORT} still to fill in) and wait for it;
    another port is tried if someone else took the first meanwhile."""
    for _ in range(attempts - 1):
        running = _start_once(kind, caddyfile, workdir)
        if running.error is None or "address already in use" not in running.error:
            return running
    return _start_once(kind, caddyfile, workdir)


def _start_once(kind: ServerKind, caddyfile: str, workdir: Path) -> Running:
    """Children get a private HOME and XDG dirs so Caddy's autosave and storage stay in
    `workdir`, and their own session so they can be stopped by process group."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _pick_port()
    config = workdir / "Caddyfile"
    config.write_text(caddyfile.replace("{PORT}", str(port)))
    env = clean_env()
    env.update(kind.env)
    env.update(
        HOME=str(workdir),
        XDG_CONFIG_HOME=str(workdir / "config"),
        XDG_DATA_HOME=str(workdir / "data"),
    )
    log = workdir / "server.log"
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                kind.argv(config),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
                start_new_session=True,
            )
    except OSError as exc:
        return Running(kind, port, None, f"cannot run {kind.binary}: {exc}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return Running(
                kind,
                port,
                None,
                f"exited with {proc.returncode}: {_tail(log) or _adapt_error(kind, config)}",
            )
        if _listening(port):
            return Running(kind, port, proc, None)
        time.sleep(0.05)
    running = Running(kind, port, proc, f"not listening after {START_TIMEOUT_S:.0f}s")
    running.stop()
    return running
