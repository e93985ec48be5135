"""The list of accepted differences (`known_differences.toml`) and its rendering for the docs.

Each entry names a case, a request section (or `*` for every section of the case), a kind and
a reason:

- `gap`: zeroserve does not (yet) answer like Caddy. The test of that case is
  xfail(strict=True): once zeroserve answers like Caddy, the entry must go.
- `intended`: zeroserve deliberately answers otherwise (RFC 9112 strictness where Caddy is
  lenient). The test asserts zeroserve's own answer, `zeroserve_status`.

Run `python -m tests.differential.known` to print the Markdown table that
docs/COMPATIBILITY.md carries under "Differential testing".
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

KNOWN_FILE = Path(__file__).resolve().parent / "known_differences.toml"
KINDS = ("gap", "intended")


@dataclass(frozen=True)
class Known:
    case: str
    request: str  # a section name, or "*"
    kind: str
    reason: str
    zeroserve_status: int | None = None

    def covers(self, case: str, request: str) -> bool:
        return self.case == case and self.request in ("*", request)


def load_known(path: Path = KNOWN_FILE) -> list[Known]:
    data = tomllib.loads(path.read_text())
    entries = []
    for i, item in enumerate(data.get("difference", []), 1):
        unknown = set(item) - {"case", "request", "kind", "reason", "zeroserve_status"}
        if unknown or not {"case", "request", "kind", "reason"} <= set(item):
            raise ValueError(f"{path.name}: entry {i}: bad keys {sorted(item)}")
        if item["kind"] not in KINDS:
            raise ValueError(f"{path.name}: entry {i}: kind must be one of {KINDS}")
        if (item["kind"] == "intended") != ("zeroserve_status" in item):
            raise ValueError(f"{path.name}: entry {i}: zeroserve_status goes with kind=intended")
        entries.append(Known(**item))
    return entries


def find(entries: list[Known], case: str, request: str) -> Known | None:
    return next((k for k in entries if k.covers(case, request)), None)


def markdown(entries: list[Known]) -> str:
    """The table for docs/COMPATIBILITY.md; a test checks the docs carry exactly this."""
    rows = ["| case | request | kind | reason |", "|---|---|---|---|"]
    for k in entries:
        reason = k.reason.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{k.case}` | `{k.request}` | {k.kind} | {reason} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown(load_known()), end="")
