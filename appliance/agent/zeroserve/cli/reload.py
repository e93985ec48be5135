"""`zeroserve reload`: give a running instance a new config through its admin endpoint."""

from __future__ import annotations

import argparse

from zeroserve.cli import admin_client
from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="Configuration file ('-' = stdin)")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")
    p.add_argument("--address", default=None, help="Address of the admin endpoint")
    p.add_argument("-f", "--force", action="store_true", help="Reload even if unchanged")


def run(args: argparse.Namespace) -> int:
    from zeroserve.caddyjson.encode import encode

    config = load_config(args.config, args.adapter)
    headers = {"Content-Type": "application/json"}
    if args.force:
        headers["Cache-Control"] = "must-revalidate"
    address = admin_client.resolve_address(args.address, config)
    status, body = admin_client.request(
        address, "POST", "/load", encode(config, pretty=False), headers
    )
    admin_client.expect_ok(status, body, "sending configuration to instance")
    return 0


COMMAND = Command(
    name="reload",
    usage="--config <path> [--adapter <name>] [--address <interface>] [--force]",
    short="Changes the config of the running instance",
    long="Adapts the config locally and POSTs it to the running instance's /load endpoint.",
    add_arguments=add_arguments,
    run=run,
)
