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
import sys
import tempfile
from pathlib import Path

from tests.differential.case import load_cases
from tests.differential.compare import summary
from tests.differential.known import find, load_known
from tests.differential.runner import Pool, prepare_fixtures
from tests.differential.servers import ServerKind
from tests.differential.upstream import Upstream

VENV_BIN = Path(sys.executable).parent


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.differential")
    p.add_argument("--caddy", type=Path, default=VENV_BIN / "caddy")
    p.add_argument("--candidate", type=Path, default=VENV_BIN / "zeroserve")
    p.add_argument("--suggest", action="store_true")
    p.add_argument("--show", action="store_true", help="print Caddy's answer to every request")
    p.add_argument("cases", nargs="*")
    args = p.parse_args()
    cases = [c for c in load_cases() if not args.cases or c.name in args.cases]
    known = load_known()
    extra = ("--workers", "1") if args.candidate.name == "zeroserve" else ()
    total = identical = 0
    upstream = Upstream()
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        base = Path(tmp)
        pool = Pool(ServerKind("caddy", args.caddy),
                    ServerKind(args.candidate.name, args.candidate, extra),
                    prepare_fixtures(base / "site"), upstream.address, base / "runs")
        pool.submit(cases)
        try:
            for case in cases:
                result = pool.result(case)
                if result.caddy_error:
                    print(f"{case.name}: Caddy cannot serve it: {result.caddy_error}")
                if result.zeroserve_error:
                    print(f"{case.name}: {args.candidate.name} cannot serve it: "
                          f"{result.zeroserve_error}")
                for r in result.requests:
                    total += 1
                    identical += not r.diffs
                    if args.show:
                        print(f"{case.name}/{r.section}: {summary(r.caddy, headers=True)}")
                    if not r.diffs:
                        continue
                    print(f"{case.name}/{r.section}:")
                    for d in r.diffs:
                        print(f"    {d}")
                    print(f"    caddy:     {summary(r.caddy)}")
                    print(f"    candidate: {summary(r.zeroserve)}")
                    if args.suggest and find(known, case.name, r.section) is None:
                        reason = (result.zeroserve_error or r.diffs[0]).replace('"', "'")
                        print(f'[[difference]]\ncase = "{case.name}"\nrequest = "{r.section}"\n'
                              f'kind = "gap"\nreason = "{reason[:300]}"\n')
        finally:
            pool.close()
            upstream.close()
    pct = 100.0 * identical / total if total else 0.0
    print(f"{identical}/{total} requests identical ({pct:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
