"""A php-fpm pool of the tests' own (Debian's php-fpm, installed by `make setup`): its config
under a work directory, listening on a loopback port or a unix socket, stopped by PID."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import textwrap
import time
from pathlib import Path

from tests.engine.wire import wait_listening


def binary() -> str | None:
    """The php-fpm binary (Debian names it with its version, in /usr/sbin)."""
    return shutil.which("php-fpm") or next(iter(sorted(glob.glob("/usr/sbin/php-fpm*"))), None)


def start(workdir: Path, listen: int | Path) -> subprocess.Popen:
    """A master with four workers on 127.0.0.1:listen (a port) or on the unix socket `listen`,
    returned once it accepts. Four, so that a test's slow scripts, which go on running after
    both proxies gave up on them, leave workers for the next test's requests."""
    path = binary()
    if path is None:
        raise FileNotFoundError("php-fpm is not installed: run `make setup` (Debian's php-fpm)")
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "php-fpm.conf"
    conf.write_text(
        textwrap.dedent(
            f"""\
            [global]
            error_log = {workdir}/error.log
            pid = {workdir}/php-fpm.pid
            daemonize = no
            [pool]
            listen = {listen if isinstance(listen, Path) else f"127.0.0.1:{listen}"}
            pm = static
            pm.max_children = 4
            clear_env = yes
            """
        )
    )
    argv = [path, "--nodaemonize", "--fpm-config", str(conf)]
    if os.geteuid() == 0:
        argv.append("--allow-to-run-as-root")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if isinstance(listen, Path):
            _wait_unix(listen)
        else:
            wait_listening(listen)
    except OSError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_unix(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
