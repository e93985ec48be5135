"""`zeroserve start`: `run` in the background, returning once the instance is up."""

from __future__ import annotations

import argparse
import sys
import time

from zeroserve.cli import admin_client
from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command, CommandError

READY_TIMEOUT_S = 60.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="Configuration file")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")
    p.add_argument("--workers", type=int, default=None, help="Engine workers (default: per core)")
    p.add_argument("--appliance-config", default=None, help="Network policy file (TOML or YAML)")
    p.add_argument("--no-edge", action="store_true", help="Serve without the BPF edge layers")


def run(args: argparse.Namespace) -> int:
    import subprocess  # here, not at the top: every verb is imported at CLI start-up

    # Adapting here first reports config errors in the foreground, and tells the admin address.
    address = admin_client.resolve_address(None, load_config(args.config, args.adapter))
    cmd = [sys.executable, "-m", "zeroserve.cli.main", "run", "--config", args.config]
    if args.adapter:
        cmd += ["--adapter", args.adapter]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    if args.appliance_config:
        cmd += ["--appliance-config", args.appliance_config]
    if args.no_edge:
        cmd.append("--no-edge")
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise CommandError(f"zeroserve exited with status {child.returncode} while starting")
        try:
            status, _ = admin_client.request(address, "GET", "/config/", timeout=1.0)
            if status == 200:
                sys.stdout.write(
                    f"Successfully started zeroserve (pid={child.pid}) - "
                    "zeroserve is running in the background\n"
                )
                return 0
        except CommandError:
            pass
        time.sleep(0.1)
    child.terminate()
    raise CommandError(f"zeroserve did not answer on {address} within {READY_TIMEOUT_S:.0f}s")


COMMAND = Command(
    name="start",
    usage=(
        "--config <path> [--adapter <name>] [--workers N] [--appliance-config <path>] [--no-edge]"
    ),
    short="Starts zeroserve in the background and returns",
    long="Runs `zeroserve run` detached and waits until its admin endpoint answers.",
    add_arguments=add_arguments,
    run=run,
)
