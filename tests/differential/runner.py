"""Running cases: both servers once per case file, every section against each, in a pool."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.differential.case import FIXTURES_DIR, Case
from tests.differential.compare import View, differences, view
from tests.differential.servers import Running, ServerKind, start
from tests.differential.wire import exchange

# Fixed mtimes make ETag and Last-Modified the same on every run, so cases can send
# conditional requests with literal validators.
FIXTURE_MTIME_NS = 1_700_000_000_123_456_789


@dataclass
class RequestResult:
    section: str
    caddy: View
    zeroserve: View
    diffs: list[str]


@dataclass
class CaseResult:
    case: Case
    requests: list[RequestResult]
    caddy_error: str | None
    zeroserve_error: str | None


def prepare_fixtures(dest: Path) -> Path:
    """Copy the fixture site to `dest` with fixed mtimes; both servers serve this one copy."""
    shutil.copytree(FIXTURES_DIR, dest, symlinks=True)
    # Children first, so setting a file's time does not disturb its directory's afterwards.
    for root, dirs, files in os.walk(dest, topdown=False):
        for name in files + dirs:
            os.utime(
                Path(root) / name, ns=(FIXTURE_MTIME_NS, FIXTURE_MTIME_NS), follow_symlinks=False
            )
    os.utime(dest, ns=(FIXTURE_MTIME_NS, FIXTURE_MTIME_NS))
    return dest


def _run_sections(server: Running, case: Case) -> list[View]:
    views = []
    for section in case.sections:
        if server.error is not None:
            views.append({"responses": [], "end": "server not running"})
            continue
        ex = exchange(server.port, section.for_port(server.port), section.methods, section.timeout)
        views.append(view(ex, server.port, case.ignore_headers))
    return views


def _serve_and_ask(
    kind: ServerKind, case: Case, caddyfile: str, workdir: Path
) -> tuple[Running, list[View]]:
    server = start(kind, caddyfile, workdir)
    try:
        return server, _run_sections(server, case)
    finally:
        server.stop()


def run_case(
    case: Case,
    caddy: ServerKind,
    candidate: ServerKind,
    fixtures: Path,
    upstream: str,
    workdir: Path,
) -> CaseResult:
    """Serve the case with both at once (each on its own port) and compare per section."""
    caddyfile = case.caddyfile_with(fixtures, upstream)
    with ThreadPoolExecutor(max_workers=2) as both:
        ref = both.submit(_serve_and_ask, caddy, case, caddyfile, workdir / case.name / "caddy")
        cand = both.submit(
            _serve_and_ask, candidate, case, caddyfile, workdir / case.name / "zeroserve"
        )
        (ref_server, ref_views), (cand_server, cand_views) = ref.result(), cand.result()
    requests = [
        RequestResult(s.name, c, z, differences(c, z))
        for s, c, z in zip(case.sections, ref_views, cand_views, strict=True)
    ]
    return CaseResult(case, requests, ref_server.error, cand_server.error)


class Pool:
    """Runs every case in the background; `result(case)` waits for that one.

    Cases are independent (own ports, own work dirs), so a few run at once; the limit keeps
    the two shared cores usable for everyone else.
    """

    def __init__(
        self,
        caddy: ServerKind,
        candidate: ServerKind,
        fixtures: Path,
        upstream: str,
        workdir: Path,
        workers: int = 3,
    ) -> None:
        self._args = (caddy, candidate, fixtures, upstream, workdir)
        self._executor = ThreadPoolExecutor(max_workers=workers)
        self._futures: dict[str, Future[CaseResult]] = {}

    def submit(self, cases: Iterable[Case]) -> None:
        for case in cases:
            if case.name not in self._futures:
                self._futures[case.name] = self._executor.submit(run_case, case, *self._args)

    def result(self, case: Case) -> CaseResult:
        self.submit([case])
        return self._futures[case.name].result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
