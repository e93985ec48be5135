"""`zeroserve adapt`: a config to Caddy's JSON on stdout, byte-for-byte as `caddy adapt`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zeroserve.cli.command import Command
from zeroserve.cli.config_input import config_filename, read_config
from zeroserve.cli.output import log_adapt, warn_adapt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="Config to adapt (- = stdin)")
    p.add_argument("-a", "--adapter", default="caddyfile", help="Name of config adapter")
    p.add_argument("-p", "--pretty", action="store_true", help="Format the output for humans")
    p.add_argument("--validate", action="store_true", help="Validate the output")


def load_config(path: str, adapter: str | None) -> dict[str, Any]:
    """Read and adapt a config, logging the adapter's lines and warnings; used by every verb.

    `adapter=None` picks the adapter from the file name as Caddy's `run` does
    (`Caddyfile*` or `*.caddyfile` → caddyfile, else JSON).
    """
    from zeroserve.adapt import adapt_config
    from zeroserve.adapt.adaptlog import collecting

    with collecting() as logs:
        try:
            result = adapt_config(read_config(path), config_filename(path), adapter)
        finally:
            # Caddy logs these as it adapts, so they come out even when adapting then fails
            for record in logs:
                log_adapt(record)
    for warning in result.warnings:
        warn_adapt(warning)
    return result.config


def run(args: argparse.Namespace) -> int:
    from zeroserve.caddyjson.encode import encode

    config = load_config(args.config, args.adapter)
    if args.validate:
        from zeroserve.cli.validate import check_config

        check_config(config)
    sys.stdout.buffer.write(encode(config, pretty=args.pretty) + b"\n")
    sys.stdout.buffer.flush()
    return 0


COMMAND = Command(
    name="adapt",
    usage="--config <path> [--adapter <name>] [--pretty] [--validate]",
    short="Adapts a configuration to Caddy's native JSON",
    long="Adapts a Caddyfile (or JSON) config to Caddy's JSON on stdout; warnings go to stderr.",
    add_arguments=add_arguments,
    run=run,
)
