"""`zeroserve status`: the running instance's layers, per-rule counters and recent drops."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from zeroserve.cli import admin_client
from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command, CommandError
from zeroserve.cli.plan import table


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, help="Address of the admin endpoint")
    p.add_argument("-c", "--config", default=None, help="Config whose admin address to use")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")
    p.add_argument("--json", action="store_true", help="Print the admin endpoint's JSON")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def render(status: dict[str, Any]) -> str:
    edge = status["edge"]
    out = [f"listen: {', '.join(status['listen']) or '-'}"]
    if not edge.get("enabled"):
        out.append("edge layers: disabled")
        return "\n".join(out) + "\n"
    programs = edge["programs"]
    hooks = [
        f"xdp ({edge['xdp_mode']}, prog {programs['xdp']})" if programs["xdp"] else "",
        "tc" if programs["tc"] else "",
        "sk_lookup" if programs["sk_lookup"] else "",
    ]
    out.append(f"edge layers: {', '.join(filter(None, hooks)) or 'none needed'}")
    out.append(f"interfaces: {', '.join(edge['interfaces']) or '-'}")
    last = edge["last_reload"]
    reloads = edge["reloads"]
    out.append(
        f"reloads: {reloads['programs']} program swaps, {reloads['maps']} map updates; "
        f"last: {last['kind']} (stage {last['stage_ms']} ms, commit {last['commit_ms']} ms)"
    )
    rows = [("RULE", "WHAT", "LINE", "LAYER", "DROPPED")]
    for r in edge["rules"]:
        dropped = r.get("dropped")
        counts = f"{dropped['packets']} pkts / {dropped['bytes']} B" if dropped else "-"
        rows.append((r["rule"], r["what"], r["line"], r["layer"], counts))
    out.append("")
    out.append(table(rows).rstrip("\n"))
    if edge["verdicts"]:
        shown = ", ".join(f"{k} {v['packets']}" for k, v in edge["verdicts"].items())
        out.append(f"\nxdp verdicts (packets): {shown}")
    if edge["sites"]:
        rows = [("SITE", "IN PKTS", "IN BYTES", "OUT PKTS", "OUT BYTES")]
        for s in edge["sites"]:
            rows.append(
                (
                    s["site"],
                    *(str(s[k]) for k in ("in_packets", "in_bytes", "out_packets", "out_bytes")),
                )
            )
        out.append("\n" + table(rows).rstrip("\n"))
    if edge.get("syncookies"):
        shown = ", ".join(f"{c['interface']} {c['packets']}" for c in edge["syncookies"])
        out.append(f"\nxdp SYN cookies sent (SYN-ACKs): {shown}")
    if edge["dispatch"]:
        out.append(f"\nsk_lookup dispatch: {', '.join(edge['dispatch'])}")
    out.append("")
    if edge["drops"]:
        rows = [("SOURCE", "REASON", "RULE", "FIRST", "LAST", "PACKETS")]
        for d in edge["drops"]:
            rows.append(
                (
                    d["source"],
                    d["reason"],
                    str(d["rule"] or "-"),
                    _when(d["first"]),
                    _when(d["last"]),
                    str(d["packets"]),
                )
            )
        out.append("recent drops:")
        out.append(table(rows).rstrip("\n"))
    else:
        out.append("recent drops: none")
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.adapter) if args.config and not args.address else None
    address = admin_client.resolve_address(args.address, config)
    status, body = admin_client.request(address, "GET", "/zeroserve/status")
    admin_client.expect_ok(status, body, "reading status")
    try:
        report = json.loads(body)
    except ValueError as exc:
        raise CommandError(f"reading status: {exc}") from None
    sys.stdout.write(body.decode() if args.json else render(report))
    return 0


COMMAND = Command(
    name="status",
    usage="[--config <path> [--adapter <name>]] [--address <interface>] [--json]",
    short="Shows the edge layers of a running instance, with counters and recent drops",
    long=(
        "Reads GET /zeroserve/status from the admin endpoint: which hooks are attached where, "
        "each rule's layer and XDP drop counters, TC site counters, sk_lookup dispatch, and the "
        "sampled records of recently dropped sources."
    ),
    add_arguments=add_arguments,
    run=run,
)
