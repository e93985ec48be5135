"""Session fixtures of the differential suite: one pool running every selected case, a tally."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.differential.case import Case
from tests.differential.runner import Pool, prepare_fixtures
from tests.differential.servers import ZEROSERVE_ARGS, ServerKind
from tests.differential.upstream import Upstream


@dataclass
class Tally:
    total: int = 0
    identical: int = 0
    intended: int = 0
    gaps: int = 0
    unlisted: int = 0

    def line(self) -> str:
        pct = 100.0 * self.identical / self.total if self.total else 0.0
        ok = 100.0 * (self.identical + self.intended) / self.total if self.total else 0.0
        return (
            f"differential: {self.identical}/{self.total} requests identical ({pct:.1f}%; "
            f"{ok:.1f}% with the {self.intended} intended differences); "
            f"{self.gaps} known gaps, {self.unlisted} unlisted"
        )


TALLY_KEY = pytest.StashKey[Tally]()


@pytest.fixture(scope="session")
def fixture_site(tmp_path_factory):
    return prepare_fixtures(tmp_path_factory.mktemp("differential") / "site")


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[str]:
    upstream = Upstream()
    yield upstream.address
    upstream.close()


@pytest.fixture(scope="session")
def differential_pool(
    request, caddy_bin, zeroserve_bin, fixture_site, echo_upstream, tmp_path_factory
) -> Iterator[Pool]:
    pool = Pool(
        ServerKind("caddy", caddy_bin),
        ServerKind("zeroserve", zeroserve_bin, ZEROSERVE_ARGS),
        fixture_site,
        echo_upstream,
        tmp_path_factory.mktemp("runs"),
    )
    # Start every selected case now, so later tests find their results ready.
    params = (getattr(item, "callspec", None) for item in request.session.items)
    pool.submit(
        p.params["case"] for p in params if p is not None and isinstance(p.params.get("case"), Case)
    )
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def differential_tally(request) -> Tally:
    return request.config.stash.setdefault(TALLY_KEY, Tally())


def pytest_terminal_summary(terminalreporter, config) -> None:
    tally = config.stash.get(TALLY_KEY, None)
    if tally is not None and tally.total:
        terminalreporter.write_line(tally.line())
