"""The placement planner: Caddy JSON (+ appliance config) → which layer runs each rule.

Pure: no bcc, no pyroute2, no kernel. `build_plan` returns a Plan whose
placements explain every decision, and whose per-layer parts are the data the
datapath loads into maps.
"""

from zeroserve.plan.appliance import (
    ApplianceConfig,
    ApplianceConfigError,
    load_appliance_config,
    parse_appliance_config,
)
from zeroserve.plan.lines import LineIndex
from zeroserve.plan.model import Layer, Placement, Plan
from zeroserve.plan.planner import build_plan

__all__ = [
    "ApplianceConfig",
    "ApplianceConfigError",
    "Layer",
    "LineIndex",
    "Placement",
    "Plan",
    "build_plan",
    "load_appliance_config",
    "parse_appliance_config",
]
