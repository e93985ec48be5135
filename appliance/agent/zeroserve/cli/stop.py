"""`zeroserve stop`: ask a running instance to drain and exit (`POST /stop`)."""

from __future__ import annotations

import argparse

from zeroserve.cli import admin_client
from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="Address of the admin endpoint")
    p.add_argument("-c", "--config", default=None, help="Config whose admin address to use")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.adapter) if args.config and not args.address else None
    address = admin_client.resolve_address(args.address, config)
    status, body = admin_client.request(address, "POST", "/stop")
    admin_client.expect_ok(status, body, "stopping instance")
    return 0


COMMAND = Command(
    name="stop",
    usage="[--config <path> [--adapter <name>]] [--address <interface>]",
    short="Gracefully stops a started zeroserve process",
    long="POSTs /stop to the admin endpoint; in-flight requests drain up to grace_period.",
    add_arguments=add_arguments,
    run=run,
)
