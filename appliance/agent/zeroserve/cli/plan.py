"""`zeroserve plan`: which layer (XDP, TC, sk_lookup, engine) runs each rule, and why."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from zeroserve.adapt import is_caddyfile_name
from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command, CommandError
from zeroserve.cli.config_input import config_filename, read_config

if TYPE_CHECKING:
    from zeroserve.plan import ApplianceConfig, LineIndex


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


def line_index(path: str, adapter: str | None) -> LineIndex | None:
    """Caddyfile lines for the rules of a config file; None for JSON and stdin (spent by
    now)."""
    from zeroserve.plan import LineIndex

    adapter = adapter or ("caddyfile" if is_caddyfile_name(path) else "json")
    if adapter != "caddyfile" or path == "-":
        return None
    return LineIndex(config_filename(path), read_config(path))


def appliance_config(path: str | None) -> ApplianceConfig | None:
    """The --appliance-config file, checked; a mistake is one `Error:` line."""
    from zeroserve.plan import ApplianceConfigError, load_appliance_config

    try:
        return load_appliance_config(path) if path else None
    except ApplianceConfigError as err:
        raise CommandError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from zeroserve.plan import build_plan

    config = load_config(args.config, args.adapter)
    plan = build_plan(
        config, appliance_config(args.appliance_config), line_index(args.config, args.adapter)
    )
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
