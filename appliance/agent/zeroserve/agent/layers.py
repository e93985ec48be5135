"""The agent's edge layers: each config is planned, its programs staged beside the
running ones, and committed once the engine serves the config.

The engine runs every rule of the config, so the layers only ever take work off it:
a dropped packet is one the engine would have answered with `abort`. That makes the
order safe: the programs are compiled and verified before the engine swaps (a
rejection leaves both old), and committed after it, when the new listening sockets
exist for sk_lookup. If the commit fails, the agent swaps the engine back.

One agent owns the pinned state of a bpffs at a time (`PinLayout.claim`). Holding
the claim at start means any zeroserve program still attached in this namespace
was left by an agent that died; it is taken off before the new one attaches, and
the sysctls it set for SYN cookies get their pinned old values back.
"""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from zeroserve.caddyjson.encode import encode
from zeroserve.datapath import capabilities
from zeroserve.plan import ApplianceConfig, Layer, LineIndex, Plan, build_plan

XDP_PROGRAM = "zs_xdp"
TC_FILTERS = ("zeroserve-in", "zeroserve-out")


class EdgeError(Exception):
    """Edge programs or rules the kernel refused; str() leads with the Caddyfile line."""


def unavailable_reason() -> str | None:
    """Why the edge layers cannot run in this process, or None when they can."""
    if not capabilities.may_load_bpf():
        return capabilities.explain(list(capabilities.LAYER_NEEDS), capabilities.effective())
    if importlib.util.find_spec("bcc") is None:
        return "bcc is not installed (python3-bpfcc): BPF programs cannot be compiled"
    from zeroserve.datapath.pins import BpffsError, ensure_bpffs

    try:
        ensure_bpffs()
    except BpffsError as err:
        return str(err)
    return None


def sockets_by_address(fds: list[int]) -> dict[tuple[str, int], int]:
    """(address, port) -> one listening fd per address; "" is the wildcard of both families.

    One socket of a SO_REUSEPORT group is enough: the kernel spreads the
    connections sk_lookup hands to it over the whole group.
    """
    out: dict[tuple[str, int], int] = {}
    for fd in fds:
        sock = socket.socket(fileno=fd)
        try:
            host, port = sock.getsockname()[:2]
        finally:
            sock.detach()  # the engine owns the fd
        address = "" if ipaddress.ip_address(host).is_unspecified else host
        out.setdefault((address, port), fd)
    return out


# Handlers the engine has no module for, run by an edge layer alone when placed there.
EDGE_ONLY_HANDLERS = ("rate_limit",)
_STEP = re.compile(r"\.(routes|handle)\[(\d+)\]|\.(errors)|\.named_routes\.([^.\[]+)")


def engine_config(config: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The config the engine runs: all of it, less the edge-only handlers placed in XDP.

    Rules XDP runs stay in the engine too when it has a handler for them (an `abort`
    still meets traffic that crosses no attached interface, such as loopback's).
    """
    servers = ((config.get("apps") or {}).get("http") or {}).get("servers") or {}
    rules = [
        p.rule
        for p in plan.placements
        if p.layer is Layer.XDP and p.what.split(" ")[0] in EDGE_ONLY_HANDLERS
    ]
    if not rules:
        return config
    # a copy in which no node sits in two places: the adapter shares module objects
    # (ModuleObject in caddyjson/model.py), and a rule drops only the handler at its path
    out = json.loads(encode(config))
    copies = out["apps"]["http"]["servers"]
    drop: set[int] = set()
    for rule in rules:
        name = max((n for n in servers if rule.startswith(f"{n}.")), key=len)
        node: Any = copies[name]
        for step in _STEP.finditer(rule, len(name)):
            kind, index, errors, named = step.groups()
            if kind == "routes" and "handle" in node:  # a route's lone subroute, unnamed
                node = node["handle"][0]
            if kind:
                node = node[kind][int(index)]
            elif errors:
                node = node["errors"]
            else:
                node = node["named_routes"][named]
        if "handle" in node:  # the route of a lone handler
            node = node["handle"][0]
        drop.add(id(node))
    _without(out, drop)
    return out


def _without(node: Any, drop: set[int]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("handle"), list):
            node["handle"] = [h for h in node["handle"] if id(h) not in drop]
        for value in node.values():
            _without(value, drop)
    elif isinstance(node, list):
        for value in node:
            _without(value, drop)


def _first_line(text: str) -> str:
    """The line of a compiler or verifier report that says what went wrong."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[-1] if lines else "rejected"


@dataclass
class Timing:
    """How the last commits went: map writes alone, or a program swap with its compile."""

    kind: str = ""
    stage_s: float = 0.0
    commit_s: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"maps": 0, "programs": 0})


class EdgeLayers:
    """The edge programs of one agent, on the interfaces of its network namespace."""

    def __init__(self, appliance: ApplianceConfig | None = None, layout: Any = None) -> None:
        from zeroserve.datapath import attach
        from zeroserve.datapath.edge import Edge
        from zeroserve.datapath.pins import PinLayout

        self.appliance = appliance or ApplianceConfig()
        self.layout = layout or PinLayout()
        interfaces = self.appliance.interfaces or attach.up_interfaces()
        self.appliance = replace(self.appliance, interfaces=interfaces)
        self.edge = Edge(self.layout)
        self.timing = Timing()
        self.cleaned: list[str] = []  # what a dead agent left, undone by open()
        self._claim: int | None = None
        self._mu = threading.Lock()  # status readers against commits

    def open(self) -> None:
        """Claim the pinned state and take off what a dead agent left (see `cleaned`)."""
        from zeroserve.datapath import attach

        self._claim = self.layout.claim()
        if self._claim is None:
            raise EdgeError(f"another zeroserve agent holds {self.layout.root}")
        cleaned = self.cleaned = []
        with self.layout.lock():
            self.layout.remove_handoffs()
            left = self.edge.left_xdp()
            for name, index in attach.all_interfaces().items():
                prog = attach.xdp_prog_id(index)
                if prog and (prog == left or _prog_name(prog) == XDP_PROGRAM):
                    for mode in attach.XdpMode:
                        attach.detach_xdp(index, mode)
                    cleaned.append(f"xdp on {name}")
                names = {n for d in ("ingress", "egress") for n in attach.tc_filter_names(index, d)}
                if names & set(TC_FILTERS):
                    attach.detach_tc(index)
                    cleaned.append(f"tc on {name}")
            for name, value in self.edge.recover().items():
                cleaned.append(f"sysctl {name.replace('/', '.')} set back to {value}")

    def plan(self, config: dict[str, Any], lines: LineIndex | None = None) -> Plan:
        return build_plan(config, self.appliance, lines)

    def stage(self, plan: Plan) -> Any:
        """Compile and verify aside (a no-op when only rules change); raises EdgeError."""
        from zeroserve.datapath.edge import StageError

        started = time.monotonic()
        # Read before loading: the kernel's refusal (EPERM, or a verifier log) does not
        # name the capability it wanted.
        caps = capabilities.effective()
        try:
            staged = self.edge.stage(plan, bool(plan.sock.dispatch))
        except StageError as err:
            cause = _refusal([err.layer.value], caps, _first_line(str(err)))
            raise EdgeError(f"{blame(plan, err.layer)}: {cause}") from None
        # BpfError and the like: pins that cannot be opened, made or moved.
        except OSError as err:
            cause = _refusal(_layers(plan), caps, f"edge layers: {err}")
            raise EdgeError(f"{blame(plan, None)}: {cause}") from None
        self.timing.stage_s = time.monotonic() - started
        return staged

    def commit(self, staged: Any, listener_fds: list[int]) -> None:
        """Write the staged plan's rules and swap its programs in; raises EdgeError."""
        from zeroserve.datapath import attach, libbpf

        started = time.monotonic()
        caps = capabilities.effective()
        kind = "maps" if staged.loaded is None else "programs"
        sockets = sockets_by_address(listener_fds)
        wanted = {(d.address, d.port) for d in staged.plan.sock.dispatch}
        sockets = {key: fd for key, fd in sockets.items() if key in wanted}
        with self._mu:
            try:
                self.edge.commit(staged, sockets)
            except (attach.AttachError, libbpf.BpfError, ValueError, OSError) as err:
                cause = _refusal(_layers(staged.plan), caps, f"edge layers: {err}")
                raise EdgeError(f"{blame(staged.plan, None)}: {cause}") from None
        self.timing.kind = kind
        self.timing.commit_s = time.monotonic() - started
        self.timing.counts[kind] += 1

    def close(self) -> None:
        """Take every program off its hook (rules and counters stay pinned); end the claim."""
        with self._mu:
            try:
                self.edge.detach()
            finally:
                if self._claim is not None:
                    os.close(self._claim)
                    self._claim = None

    def status(self) -> dict[str, Any]:
        """Per-rule counters per layer, the hooks in use and the sampled drops."""
        with self._mu:
            return _status(self)


def _layers(plan: Plan) -> list[str]:
    """The layers plan runs programs in (plan.Layer values)."""
    needed = {Layer.XDP: plan.xdp.needed, Layer.TC: plan.tc.needed, Layer.SOCK: plan.sock.dispatch}
    return [layer.value for layer, on in needed.items() if on]


def _refusal(layers: list[str], caps: int, text: str) -> str:
    """The kernel's refusal text, led by what the process lacks that explains it: an
    absent capability (instead of the text, which names none), or a too-low
    RLIMIT_MEMLOCK on a kernel that still charges maps to it (EPERM from map creation)."""
    lacking = capabilities.explain(layers, caps)
    if lacking:
        return lacking
    memlock = capabilities.memlock_shortfall()
    if memlock and os.strerror(errno.EPERM) in text:
        return f"{memlock}: {text}"
    return text


def _prog_name(prog_id: int) -> str:
    from zeroserve.datapath import libbpf

    try:
        return libbpf.prog_name_by_id(prog_id)
    except libbpf.BpfError:  # unloaded since the link was read
        return ""


def blame(plan: Plan, layer: Layer | None) -> str:
    """The Caddyfile line of the first rule the failing layer runs, else of any edge rule."""
    rules = [p for p in plan.placements if p.layer is not Layer.ENGINE]
    for placement in rules:
        if (layer is None or placement.layer is layer) and placement.line != "n/a":
            return f"{placement.line}: {placement.what}"
    for placement in rules:
        if layer is None or placement.layer is layer:
            return placement.rule
    return "edge layers"


def _counter(c: Any) -> dict[str, int]:
    return {"packets": c.packets, "bytes": c.bytes}


def _status(layers: EdgeLayers) -> dict[str, Any]:
    edge, plan = layers.edge, layers.edge.plan
    current = edge.current
    out: dict[str, Any] = {
        "enabled": True,
        "interfaces": list(edge.interfaces),
        "xdp_mode": edge.xdp_mode.name.lower(),
        "programs": {
            "xdp": current.xdp.prog_id if current.xdp else None,
            "tc": current.tc is not None,
            "sk_lookup": edge.sk_link >= 0,
        },
        "reloads": dict(layers.timing.counts),
        "last_reload": {
            "kind": layers.timing.kind,
            "stage_ms": round(layers.timing.stage_s * 1000, 3),
            "commit_ms": round(layers.timing.commit_s * 1000, 3),
        },
        "rules": [],
        "verdicts": {},
        "sites": [],
        "dispatch": [],
        "drops": [],
        "syncookies": [],
    }
    if plan is None:
        return out
    for p in plan.placements:
        row: dict[str, Any] = {
            "rule": p.rule,
            "what": p.what,
            "line": p.line,
            "layer": p.layer.value,
        }
        if p.rule_id and current.xdp is not None:
            row["id"] = p.rule_id
            row["dropped"] = _counter(current.xdp.rule_counter(p.rule_id))
        out["rules"].append(row)
    if current.xdp is not None:
        out["verdicts"] = {k: _counter(v) for k, v in current.xdp.verdict_counters().items()}
        out["drops"] = list(_drops(current.xdp.drops()))
        out["syncookies"] = _syncookies(edge, current.xdp.syncookie_counters())
    if current.tc is not None:
        for site in plan.tc.sites:
            counter = current.tc.site_counter(site.id)
            out["sites"].append({"site": f"{site.address}:{site.port}", **counter._asdict()})
    if current.sock is not None:
        out["dispatch"] = [f"{address}:{port}" for address, port in edge.sockets]
    return out


def _syncookies(edge: Any, counters: dict[int, Any]) -> list[dict[str, Any]]:
    """SYN-ACKs XDP sent per interface of the edge (an ifindex gone since shows as such)."""
    from zeroserve.datapath import attach

    names = {index: name for name, index in attach.all_interfaces(edge.ns).items()}
    return [
        {"interface": names.get(index, f"ifindex {index}"), **c._asdict()}
        for index, c in sorted(counters.items())
    ]


def _drops(drops: list[Any]) -> Iterator[dict[str, Any]]:
    # bpf_ktime_get_ns is CLOCK_MONOTONIC: shift it onto the wall clock once.
    offset = time.time() - time.monotonic_ns() / 1e9
    for d in drops:
        yield {
            "source": d.source,
            "reason": d.reason,
            "rule": d.rule,
            "first": round(offset + d.first_ns / 1e9, 3),
            "last": round(offset + d.last_ns / 1e9, 3),
            "packets": d.packets,
        }


def _label(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def metrics(status: dict[str, Any] | None) -> str:
    """Prometheus text exposition of the layers' counters (`zeroserve_*`)."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            shown = ",".join(f"{k}={_label(v)}" for k, v in labels.items())
            lines.append(f"{name}{{{shown}}} {value}" if shown else f"{name} {value}")

    enabled = status is not None
    family("zeroserve_edge_enabled", "gauge", "1 if the BPF edge layers run.", [({}, int(enabled))])
    if status is None:
        return "\n".join(lines) + "\n"
    rules = [r for r in status["rules"] if "dropped" in r]
    for unit in ("packets", "bytes"):
        family(
            f"zeroserve_xdp_dropped_{unit}_total",
            "counter",
            f"{unit.capitalize()} XDP dropped per rule (deny and rate limit).",
            [({"rule": r["id"], "line": r["line"]}, r["dropped"][unit]) for r in rules],
        )
        family(
            f"zeroserve_xdp_{unit}_total",
            "counter",
            f"{unit.capitalize()} seen by the XDP program, per verdict.",
            [({"verdict": k}, v[unit]) for k, v in status["verdicts"].items()],
        )
    for direction in ("in", "out"):
        for unit in ("packets", "bytes"):
            family(
                f"zeroserve_tc_site_{direction}_{unit}_total",
                "counter",
                f"{unit.capitalize()} per site counted by TC ({direction}).",
                [({"site": s["site"]}, s[f"{direction}_{unit}"]) for s in status["sites"]],
            )
    for unit in ("packets", "bytes"):
        family(
            f"zeroserve_xdp_syncookie_{unit}_total",
            "counter",
            f"SYN-ACK {unit} XDP sent with SYN cookies, per interface.",
            [({"interface": c["interface"]}, c[unit]) for c in status["syncookies"]],
        )
    family(
        "zeroserve_sk_lookup_dispatch_entries",
        "gauge",
        "Listen addresses sk_lookup hands to the engine's sockets.",
        [({}, len(status["dispatch"]))],
    )
    family(
        "zeroserve_edge_reloads_total",
        "counter",
        "Edge commits, as map writes alone or as program swaps.",
        [({"kind": k}, v) for k, v in status["reloads"].items()],
    )
    return "\n".join(lines) + "\n"
