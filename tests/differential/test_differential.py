"""Caddy 2.11.7 and zeroserve serve each case's Caddyfile; their responses must be identical.

One test per case file. A request whose responses differ fails the test unless
known_differences.toml lists it: a listed `gap` makes the case xfail (strictly: a gap that
closes must leave the list), a listed `intended` difference asserts zeroserve's own status.
"""

from __future__ import annotations

import pytest

from tests.differential.case import load_cases
from tests.differential.compare import summary
from tests.differential.known import DOC_FILE, documented_table, find, load_known, markdown
from tests.differential.runner import run_case
from tests.differential.servers import ServerKind

CASES = load_cases()
KNOWN = load_known()


class KnownDifference(AssertionError):
    """Only listed gaps raise this, so only they count as the expected failure."""


def _marks(case_name: str) -> list[pytest.MarkDecorator]:
    reasons = sorted({k.reason for k in KNOWN if k.case == case_name and k.kind == "gap"})
    if not reasons:
        return []
    return [pytest.mark.xfail(strict=True, raises=KnownDifference, reason="; ".join(reasons))]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=_marks(c.name)) for c in CASES])
def test_case(case, differential_pool, differential_tally):
    result = differential_pool.result(case)
    assert result.caddy_error is None, f"Caddy cannot serve this case: {result.caddy_error}"
    wildcard = find(KNOWN, case.name, "*")
    if result.zeroserve_error is not None:
        # Nothing else can be judged (intended differences included) until it starts.
        differential_tally.total += len(result.requests)
        if wildcard is None or wildcard.kind != "gap":
            differential_tally.unlisted += len(result.requests)
            pytest.fail(
                f"zeroserve does not serve this case: {result.zeroserve_error}", pytrace=False
            )
        differential_tally.gaps += len(result.requests)
        raise KnownDifference(f"zeroserve does not start: {result.zeroserve_error}")
    problems: list[str] = []
    remaining: list[str] = []
    for r in result.requests:
        differential_tally.total += 1
        known = find(KNOWN, case.name, r.section)
        if not r.diffs:
            differential_tally.identical += 1
            if known is not None and known.request != "*":
                problems.append(f"{r.section}: identical now; remove it from known_differences")
            continue
        detail = f"{r.section}: " + "; ".join(r.diffs)
        if known is None:
            differential_tally.unlisted += 1
            problems.append(
                f"{detail}\n    caddy:     {summary(r.caddy)}"
                f"\n    zeroserve: {summary(r.zeroserve)}"
            )
        elif known.kind == "intended":
            differential_tally.intended += 1
            first = r.zeroserve["responses"][:1]
            if [resp["status"] for resp in first] != [known.zeroserve_status]:
                problems.append(
                    f"{r.section}: intended zeroserve status {known.zeroserve_status},"
                    f" got {summary(r.zeroserve)}"
                )
        else:
            differential_tally.gaps += 1
            remaining.append(f"{detail} [{known.reason}]")
    if wildcard is not None and wildcard.kind == "gap" and not remaining:
        problems.append("no request needs the '*' entry any more; remove it")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
    if remaining:
        raise KnownDifference("\n".join(remaining))


def test_known_differences_name_real_requests():
    sections = {c.name: {s.name for s in c.sections} for c in CASES}
    stale = [
        f"{k.case}/{k.request}"
        for k in KNOWN
        if k.case not in sections or (k.request != "*" and k.request not in sections[k.case])
    ]
    assert not stale, f"known_differences.toml names requests that no case has: {stale}"


def test_known_differences_documented():
    """docs/COMPATIBILITY.md lists every accepted difference with its reason."""
    doc = DOC_FILE.read_text()
    section = doc.split("## Differential testing", 1)
    assert len(section) == 2, f"{DOC_FILE.name} has no '## Differential testing' section"
    assert documented_table(section[1]) == markdown(KNOWN), (
        "the table there is stale: `python -m tests.differential.known --update-docs`"
    )


# Cases whose responses carry parts that vary by nature (time placeholders, random multipart
# boundaries, compressed bodies, ports): Caddy against itself must still come out identical,
# or the normaliser hides or invents differences.
SELF_CHECK = (
    "placeholders_time",
    "file_server_range",
    "encode_gzip",
    "encode_zstd",
    "placeholders_port",
)


@pytest.mark.parametrize("name", SELF_CHECK)
def test_caddy_against_itself_is_identical(name, caddy_bin, fixture_site, echo_upstream, tmp_path):
    case = next(c for c in CASES if c.name == name)
    kind = ServerKind("caddy", caddy_bin)
    result = run_case(case, kind, kind, fixture_site, echo_upstream, tmp_path)
    assert result.caddy_error is None and result.zeroserve_error is None
    assert [r.diffs for r in result.requests if r.diffs] == []
