"""`zeroserve validate`: adapt, then run every check the engine makes before serving."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command, CommandError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="Configuration file ('-' = stdin)")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")


def check_config(config: dict[str, Any]) -> None:
    """Compile the config exactly as `run` would, without binding anything."""
    from zeroserve.caddyjson.encode import encode
    from zeroserve.engine import Engine, EngineError

    try:
        Engine(encode(config, pretty=False).decode())
    except EngineError as exc:
        raise CommandError(f"validating config: {exc}") from None


def run(args: argparse.Namespace) -> int:
    check_config(load_config(args.config, args.adapter))
    sys.stderr.write("Valid configuration\n")
    return 0


COMMAND = Command(
    name="validate",
    usage="--config <path> [--adapter <name>]",
    short="Tests whether a configuration file is valid",
    long="Adapts the config and compiles it as the engine would; prints 'Valid configuration'.",
    add_arguments=add_arguments,
    run=run,
)
