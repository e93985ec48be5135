"""Run the differential cases outside pytest, to look at differences and list new ones.

    python -m tests.differential [--candidate BIN] [--suggest] [CASE ...]

Prints every differing request with both sides, then the identical-% line; `--show` also
prints Caddy's answer to each request, to check a new case asks what it means to. `--candidate`
defaults to the venv's zeroserve; pointing it at Caddy checks the harness against itself.
`--suggest` prints TOML entries for differences known_differences.toml does not list yet,
with the observed behaviour as the reason, for a human to edit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.differential.case import load_cases
from tests.differential.compare import summary
from tests.differential.known import Known, find, load_known
from tests.differential.runner import CaseResult, Pool, RequestResult, prepare_fixtures
from tests.differential.servers import ZEROSERVE_ARGS, ServerKind
from tests.differential.upstream import Upstream

VENV_BIN = Path(sys.executable).parent


def _entry(case: str, request: str, reason: str) -> str:
    """A known_differences.toml entry, the reason cut to a readable length."""
    # A JSON string is a valid TOML basic string.
    return (
        f'[[difference]]\ncase = "{case}"\nrequest = "{request}"\nkind = "gap"\n'
        f"reason = {json.dumps(reason[:300])}\n"
    )


def _report(result: CaseResult, candidate: str, show: bool, known: list[Known]) -> list[str]:
    """Print one case's differences; return known_differences entries it still lacks."""
    name = result.case.name
    if result.caddy_error:
        print(f"{name}: Caddy cannot serve it: {result.caddy_error}")
    if result.zeroserve_error:
        print(f"{name}: {candidate} cannot serve it: {result.zeroserve_error}")
        if find(known, name, "*") is None:
            # The innermost two parts say what is missing ("unknown module: http.handlers.x").
            cause = ":".join(result.zeroserve_error.split(":")[-2:]).strip()
            return [_entry(name, "*", f"zeroserve run refuses the config: {cause}")]
        return []
    unlisted = []
    for r in result.requests:
        if show:
            print(f"{name}/{r.section}: {summary(r.caddy, headers=True)}")
        if not r.diffs:
            continue
        print(f"{name}/{r.section}:")
        for d in r.diffs:
            print(f"    {d}")
        print(f"    caddy:     {summary(r.caddy)}\n    {candidate}: {summary(r.zeroserve)}")
        if find(known, name, r.section) is None:
            unlisted.append(r)
    if unlisted and len(unlisted) == len(result.requests):
        return [
            _entry(
                name,
                "*",
                f"every request differs, e.g. {unlisted[0].section}: {_observed(unlisted[0])}",
            )
        ]
    return [_entry(name, r.section, _observed(r)) for r in unlisted]


def _observed(r: RequestResult) -> str:
    return f"zeroserve: {summary(r.zeroserve)[:120]}; Caddy: {summary(r.caddy)[:120]}"


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.differential")
    p.add_argument("--caddy", type=Path, default=VENV_BIN / "caddy")
    p.add_argument("--candidate", type=Path, default=VENV_BIN / "zeroserve")
    p.add_argument(
        "--suggest",
        action="store_true",
        help="end with known_differences.toml entries for unlisted differences",
    )
    p.add_argument("--show", action="store_true", help="print Caddy's answer to every request")
    p.add_argument("cases", nargs="*")
    args = p.parse_args()
    cases = [c for c in load_cases() if not args.cases or c.name in args.cases]
    known = load_known()
    extra = ZEROSERVE_ARGS if args.candidate.name == "zeroserve" else ()
    total = identical = 0
    suggestions: list[str] = []
    upstream = Upstream()
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        base = Path(tmp)
        pool = Pool(
            ServerKind("caddy", args.caddy),
            ServerKind(args.candidate.name, args.candidate, extra),
            prepare_fixtures(base / "site"),
            upstream.address,
            base / "runs",
        )
        pool.submit(cases)
        try:
            for case in cases:
                result = pool.result(case)
                total += len(result.requests)
                identical += sum(not r.diffs for r in result.requests)
                suggestions += _report(result, args.candidate.name, args.show, known)
        finally:
            pool.close()
            upstream.close()
    if args.suggest and suggestions:
        print("\n# Entries for known_differences.toml (edit the reasons):\n")
        print("\n".join(suggestions), end="")
    pct = 100.0 * identical / total if total else 0.0
    print(f"{identical}/{total} requests identical ({pct:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
