"""What a doctor check reports, and the table `zeroserve doctor` prints."""

from __future__ import annotations

from dataclasses import dataclass


class ProbeFailure(Exception):
    """Raised by a probe: cause is what went wrong, fix is what the operator can do."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str  # on success what was verified, on failure the cause
    fix: str = ""


def render_table(results: list[CheckResult]) -> str:
    """Aligned table, one row per check; failures get a `fix:` line under the cause."""
    width = max([len("CHECK"), *(len(r.name) for r in results)])
    lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
    for r in results:
        cause, *more = r.detail.splitlines() or [""]
        lines.append(f"{r.name:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {cause}")
        pad = " " * (width + 10)
        lines.extend(pad + line for line in more)
        if not r.ok and r.fix:
            lines.append(f"{pad}fix: {r.fix}")
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results)} checks, {failed} failed")
    return "\n".join(lines) + "\n"
