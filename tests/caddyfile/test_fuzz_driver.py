"""A short run of bench/fuzz_caddyfile.py (the long runs are manual: --count 1000000)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO, clean_env


def test_fuzz_driver_short_run(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fuzz_caddyfile.py"),
            "--count",
            "3000",
            "--seed",
            "7",
            "--crash-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ok: 3000 inputs (seed 7)" in proc.stdout
    assert not list(tmp_path.iterdir())
