"""Every upstream adapt fixture that adapts is planned, and every distinct program
its plans need passes the verifier. Programs depend on feature sets, not rules, so
each distinct set is compiled once; compile time and instruction counts are printed
at the end of the module."""

from __future__ import annotations

import os
import re
import time
from contextlib import chdir
from dataclasses import fields, replace
from pathlib import Path

import pytest

from tests.adapt.corpus import Fixture, fixtures, make_workdir
from zeroserve.adapt import adapt_caddyfile
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.plan import build_plan
from zeroserve.plan.model import Plan

FIXTURES = fixtures()
BPF_SOURCES = Path(__file__).parents[2] / "appliance" / "bpf"
# A macro name, not a pattern such as ZS_FEATURE_DENY4_* in a comment.
FEATURE_MACRO = re.compile(r"\bZS_FEATURE_[A-Z0-9_]*[A-Z0-9]\b")
_report: list[str] = []


def _plan(fixture: Fixture, root: Path) -> Plan | str:
    """The fixture's plan, or why it has none."""
    if fixture.expected_error is not None:
        return "an error fixture: nothing to plan"
    if fixture.mock_module():
        return f"needs {fixture.mock_module()}, which exists only in Caddy's Go test binary"
    work = make_workdir(root, fixture.caddyfile)
    with chdir(work):
        try:
            config = adapt_caddyfile((work / "Caddyfile").read_bytes()).config
        except CaddyfileError as err:
            return f"does not adapt yet: {err}"
    return build_plan(config)


def _flags(features: type) -> list[str]:
    """The feature switches of a features class: its bool fields."""
    return [f.name for f in fields(features) if f.type == "bool"]


def _largest() -> dict[str, object]:
    """hook -> its features with every switch on, so new flags join by themselves."""
    from zeroserve.datapath.sock import SockFeatures
    from zeroserve.datapath.tc import TcFeatures
    from zeroserve.datapath.xdp import XdpFeatures

    return {
        hook: cls(**dict.fromkeys(_flags(cls), True))
        for hook, cls in (("xdp", XdpFeatures), ("tc", TcFeatures), ("sock", SockFeatures))
    }


def _feature_sets(tmp: Path) -> list[tuple[str, object]]:
    from zeroserve.datapath.tc import TcFeatures
    from zeroserve.datapath.xdp import XdpFeatures

    # The largest variant of each hook, each feature alone (the compiler lays out
    # each variant differently, and the verifier judges each), then the corpus's own.
    largest = _largest()
    none_xdp = XdpFeatures(**dict.fromkeys(_flags(XdpFeatures), False))
    none_tc = TcFeatures(**dict.fromkeys(_flags(TcFeatures), False))
    wanted = {*largest.items(), ("xdp", none_xdp), ("tc", none_tc)}
    for flag in _flags(XdpFeatures):
        # An IPv4 deny tier is compiled only under deny_v4.
        tier = {"deny_v4": True} if flag.startswith("deny4_") else {}
        wanted.add(("xdp", replace(none_xdp, **tier, **{flag: True})))
    for flag in _flags(TcFeatures):
        wanted.add(("tc", replace(none_tc, **{flag: True})))
    for n, fixture in enumerate(FIXTURES):
        plan = _plan(fixture, tmp / str(n))
        if isinstance(plan, Plan):
            wanted.add(("xdp", XdpFeatures.for_plan(plan.xdp)))
            wanted.add(("tc", TcFeatures.for_plan(plan.tc)))
    return sorted(wanted, key=repr)


def test_the_largest_builds_turn_on_every_feature_the_templates_test() -> None:
    """Each ZS_FEATURE_* macro the BPF C reads is defined by some hook's largest build."""
    used = {
        m.group(0)
        for path in BPF_SOURCES.rglob("*")
        if path.suffix in (".h", ".j2")
        for m in FEATURE_MACRO.finditer(path.read_text())
    }
    defined = {name for f in _largest().values() for name in f.defines() if name in used}
    assert used, "the templates test no feature macro: the pattern is stale"
    assert used - defined == set()


@pytest.fixture(scope="module", autouse=True)
def _print_report():
    yield
    if _report:
        print("\ncorpus programs (hook, features: compile s, instructions):")
        print("\n".join(_report))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_fixture_plans(fixture: Fixture, tmp_path) -> None:
    plan = _plan(fixture, tmp_path)
    if isinstance(plan, str):
        pytest.skip(plan)
    rows = {p.rule for p in plan.placements}
    assert len(rows) == len(plan.placements), "every rule is placed once"
    for placement in plan.placements:
        assert placement.reason


def _collect() -> list[tuple[str, object]]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return _feature_sets(Path(tmp))


FEATURE_SETS = _collect()


def _name(hook: str, features: object) -> str:
    """xdp[deny_v4+vlan]: the hook and the features switched on."""
    on = [f.name for f in fields(features) if getattr(features, f.name) is True]
    return f"{hook}[{'+'.join(on)}]"


@pytest.mark.parametrize(
    ("hook", "features"), FEATURE_SETS, ids=[_name(h, f) for h, f in FEATURE_SETS]
)
def test_programs_pass_the_verifier(hook, features, request) -> None:
    from zeroserve.datapath.sock import SockLayer
    from zeroserve.datapath.tc import TcLayer
    from zeroserve.datapath.xdp import XdpLayer

    if os.geteuid() != 0:
        pytest.skip("needs root: loads BPF programs")
    layout = request.getfixturevalue("layout")
    loader = {"xdp": XdpLayer, "tc": TcLayer, "sock": SockLayer}[hook]
    started = time.monotonic()
    with loader.load(features, layout) as loaded:
        seconds = time.monotonic() - started
        infos = [p.info for p in loaded.built.programs.values()]
    for info in infos:
        assert info.xlated_insns > 0
    counts = ", ".join(f"{i.name} {i.xlated_insns} insns/{i.jited_bytes} B jited" for i in infos)
    _report.append(f"  {_name(hook, features)}: {seconds:.1f} s, {counts}")
