"""`zeroserve run`: serve a config in the foreground, like `caddy run`."""

from __future__ import annotations

import argparse

from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command, CommandError
from zeroserve.cli.output import log_line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="Configuration file ('-' = stdin)")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")
    p.add_argument("--workers", type=int, default=None, help="Engine workers (default: per core)")


def run(args: argparse.Namespace) -> int:
    from zeroserve.agent.runner import Agent
    from zeroserve.agent.sdnotify import notify
    from zeroserve.engine import EngineError

    config = load_config(args.config, args.adapter)
    try:
        agent = Agent(config, args.workers)
        agent.start()
    except EngineError as exc:
        raise CommandError(f"loading config: {exc}") from None
    except OSError as exc:
        raise CommandError(f"starting: {exc}") from None
    log_line("info", "serving initial configuration", listen=agent.engine.listen_addresses())
    notify("READY=1")
    agent.serve_forever()
    log_line("info", "shutdown complete")
    return 0


COMMAND = Command(
    name="run",
    usage="--config <path> [--adapter <name>] [--workers N]",
    short="Starts the server and blocks indefinitely",
    long="Adapts the config, starts the io_uring engine and serves until SIGINT or SIGTERM.",
    add_arguments=add_arguments,
    run=run,
)
