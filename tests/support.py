"""Plain helpers for tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The environment for child processes, without the test runner's Python path tweaks."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env
