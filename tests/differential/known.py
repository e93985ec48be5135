"""The list of accepted differences (`known_differences.toml`) and its rendering for the docs.

Each entry names a case, a request section (or `*` for every section of the case; an entry
naming the section wins), a kind and a reason:

- `gap`: zeroserve does not (yet) answer like Caddy. The test of that case is
  xfail(strict=True): once zeroserve answers like Caddy, the entry must go. A `*` gap also
  covers a case zeroserve cannot serve at all (it does not start on that Caddyfile).
- `intended`: zeroserve deliberately answers otherwise (RFC 9112 strictness where Caddy is
  lenient). The test asserts zeroserve's own answer, `zeroserve_status`.

docs/COMPATIBILITY.md carries the same list as a table under "Differential testing";
`python -m tests.differential.known --update-docs` rewrites it there from this file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

KNOWN_FILE = Path(__file__).resolve().parent / "known_differences.toml"
DOC_FILE = Path(__file__).resolve().parents[2] / "docs" / "COMPATIBILITY.md"
KINDS = ("gap", "intended")
# The table sits between these markers in the doc's "Differential testing" section.
TABLE_START = "<!-- known-differences:start (python -m tests.differential.known --update-docs) -->"
TABLE_END = "<!-- known-differences:end -->"


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
    """The entry for one request: one naming it beats the case's `*` entry."""
    exact = [k for k in entries if k.case == case and k.request == request]
    return (exact or [k for k in entries if k.covers(case, request)] or [None])[0]


def markdown(entries: list[Known]) -> str:
    """The table for docs/COMPATIBILITY.md; a test checks the docs carry exactly this."""
    rows = ["| case | request | kind | reason |", "|---|---|---|---|"]
    for k in entries:
        reason = k.reason.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{k.case}` | `{k.request}` | {k.kind} | {reason} |")
    return "\n".join(rows) + "\n"


def documented_table(doc: str) -> str | None:
    """The table between the markers in the doc's text, or None without markers."""
    if TABLE_START not in doc or TABLE_END not in doc:
        return None
    return doc.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"


def update_docs(entries: list[Known], doc_file: Path = DOC_FILE) -> None:
    doc = doc_file.read_text()
    if documented_table(doc) is None:
        raise SystemExit(f"{doc_file}: no {TABLE_START!r} ... {TABLE_END!r} markers")
    head, rest = doc.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    doc_file.write_text(f"{head}{TABLE_START}\n{markdown(entries)}{TABLE_END}{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--update-docs"]:
        update_docs(load_known())
    else:
        print(markdown(load_known()), end="")
