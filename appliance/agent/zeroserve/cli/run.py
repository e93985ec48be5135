"""`zeroserve run`: serve a config in the foreground, like `caddy run`."""

from __future__ import annotations

import argparse
import errno
import os
from typing import TYPE_CHECKING, Any

from zeroserve.cli.adapt import load_config
from zeroserve.cli.command import Command, CommandError
from zeroserve.cli.output import log_line

if TYPE_CHECKING:
    from zeroserve.agent.layers import EdgeLayers
    from zeroserve.agent.runner import Agent
    from zeroserve.plan import ApplianceConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="Configuration file ('-' = stdin)")
    p.add_argument("-a", "--adapter", default=None, help="Name of config adapter")
    p.add_argument("--workers", type=int, default=None, help="Engine workers (default: per core)")
    p.add_argument("--appliance-config", default=None, help="Network policy file (TOML or YAML)")
    p.add_argument("--no-edge", action="store_true", help="Serve without the BPF edge layers")
    p.add_argument(
        "--deploy-id",
        default=os.environ.get("ZEROSERVE_DEPLOY_ID", ""),
        help="Deployment id, part of every response cache key (default: $ZEROSERVE_DEPLOY_ID)",
    )


def edge_layers(appliance: ApplianceConfig | None) -> EdgeLayers | None:
    """The opened edge layers, or None (logged) where BPF cannot run or another agent has it."""
    from zeroserve.agent.layers import EdgeError, EdgeLayers, unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        edge = EdgeLayers(appliance)
        try:
            edge.open()
            return edge
        # OSError: the pinned state cannot be made here (e.g. a unit's read-only /sys/fs/bpf).
        except (EdgeError, OSError) as exc:
            reason = str(exc)
            if isinstance(exc, OSError) and exc.errno == errno.EROFS:
                reason = (
                    "the bpffs is read-only here, so no map can be pinned (a systemd unit"
                    f" needs ReadWritePaths= for it): {reason}"
                )
    log_line("warn", "edge layers disabled; serving without them", reason=reason)
    return None


def started_agent(
    args: argparse.Namespace,
    config: dict[str, Any],
    appliance: ApplianceConfig | None,
    edge: EdgeLayers | None,
) -> Agent:
    """The agent serving config. As where BPF cannot run at all (edge_layers), a kernel
    that refuses the edge layers leaves the engine serving every rule itself: the sites
    matter more than the filters in front of them."""
    from zeroserve.agent.layers import EdgeError
    from zeroserve.agent.runner import Agent
    from zeroserve.cli.plan import line_index
    from zeroserve.engine import EngineError

    try:
        agent = Agent(
            config,
            args.workers,
            edge,
            line_index(args.config, args.adapter),
            args.deploy_id,
            appliance.cache if appliance is not None else None,
        )
        # A stop asked for while the edge compiles still drains and detaches.
        agent.stop_on_signals()
        refused = agent.start()
    except EngineError as exc:
        # The edge refused, and the engine has no module for a rule only the edge runs.
        if isinstance(exc.__context__, EdgeError):
            log_line("warn", "edge layers disabled", reason=str(exc.__context__))
        raise CommandError(f"loading config: {exc}") from None
    except OSError as exc:
        raise CommandError(f"starting: {exc}") from None
    if refused is not None:
        log_line("warn", "edge layers disabled; serving without them", reason=str(refused))
    return agent


def run(args: argparse.Namespace) -> int:
    from zeroserve.agent.sdnotify import notify
    from zeroserve.cli.plan import appliance_config

    config = load_config(args.config, args.adapter)
    appliance = appliance_config(args.appliance_config)
    edge = None if args.no_edge else edge_layers(appliance)
    agent = started_agent(args, config, appliance, edge)
    if agent.edge is not None:
        for left in agent.edge.cleaned:
            log_line("warn", "removed edge program left by a stopped agent", hook=left)
        log_line("info", "edge layers attached", interfaces=list(agent.edge.edge.interfaces))
    log_line("info", "serving initial configuration", listen=agent.engine.listen_addresses())
    notify("READY=1")
    agent.serve_forever()
    log_line("info", "shutdown complete")
    return 0


COMMAND = Command(
    name="run",
    usage=(
        "--config <path> [--adapter <name>] [--workers N] [--appliance-config <path>] [--no-edge]"
        " [--deploy-id <id>]"
    ),
    short="Starts the server and blocks indefinitely",
    long=(
        "Adapts the config, starts the io_uring engine and serves until SIGINT or SIGTERM. "
        "As root, the edge layers (XDP, TC, sk_lookup) run the rules the planner places "
        "there on every up interface, or those the appliance config names."
    ),
    add_arguments=add_arguments,
    run=run,
)
