"""Prints how many upstream adapt fixtures passed, at the end of the run."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.adapt import test_corpus

    if not test_corpus.PASSED and not terminalreporter.stats.get("failed"):
        return
    runnable = sum(1 for f in test_corpus.FIXTURES if f.mock_module() is None)
    skipped = len(test_corpus.FIXTURES) - runnable
    terminalreporter.write_line(
        f"adapt corpus: {len(test_corpus.PASSED)}/{runnable} fixtures passed "
        f"({skipped} need modules of Caddy's Go test binary and are skipped)"
    )
