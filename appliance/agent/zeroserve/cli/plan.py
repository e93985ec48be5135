"""`zeroserve plan`: which layer (XDP, TC, sk_lookup, engine) runs each rule, and why."""

from __future__ import annotations

import argparse
import sys

from zeroserve.adapt import is_caddyfile_name
from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command, CommandError
from zeroserve.cli.config_input import config_filename, read_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="Configuration file to plan")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")
    p.add_argument("--appliance-config", default=None, help="Network policy file (TOML or YAML)")


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns; the last one runs free."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    from zeroserve.plan import (
        ApplianceConfigError,
        LineIndex,
        build_plan,
        load_appliance_config,
    )

    config = load_config(args.config, args.adapter)
    adapter = args.adapter or ("caddyfile" if is_caddyfile_name(args.config) else "json")
    lines = None
    # stdin is spent by now; its routes get no line numbers.
    if adapter == "caddyfile" and args.config != "-":
        lines = LineIndex(config_filename(args.config), read_config(args.config))
    try:
        appliance = load_appliance_config(args.appliance_config) if args.appliance_config else None
    except ApplianceConfigError as err:
        raise CommandError(str(err)) from None
    plan = build_plan(config, appliance, lines)
    rows = [("RULE", "WHAT", "LINE", "LAYER", "REASON")]
    for p in plan.placements:
        reason = f"{p.reason}; {p.hint}" if p.hint else p.reason
        rows.append((p.rule, p.what, p.line, p.layer.value, reason))
    sys.stdout.write(table(rows))
    for warning in plan.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    return 0


COMMAND = Command(
    name="plan",
    usage="--config <path> [--adapter <name>] [--appliance-config <path>]",
    short="Shows which layer runs each rule of a config",
    long=(
        "Adapts the config and prints the placement table: each rule, its Caddyfile line, "
        "the layer that runs it (xdp, tc, sock, engine) and why. The appliance config adds "
        "network-only policy: interfaces, XDP mode, DSCP and MSS per site, unserved ports."
    ),
    add_arguments=add_arguments,
    run=run,
)
