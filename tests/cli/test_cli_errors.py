"""Bad input to the CLI: one Caddy-style line on stderr, exit 1, never a traceback."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest


def run_cli(
    zeroserve_bin: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(zeroserve_bin), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("verb", ["adapt", "validate", "run"])
def test_missing_config(zeroserve_bin, tmp_path, verb):
    missing = tmp_path / "nope" / "Caddyfile"
    proc = run_cli(zeroserve_bin, verb, "--config", str(missing))
    assert_one_line_error(proc, str(missing), "no such file")


@pytest.mark.parametrize("verb", ["adapt", "validate", "run"])
def test_empty_config(zeroserve_bin, tmp_path, verb):
    empty = tmp_path / "Caddyfile"
    empty.write_text("\n  \n")
    assert_one_line_error(run_cli(zeroserve_bin, verb, "--config", str(empty)), "is empty")


def test_unreadable_config(zeroserve_bin):
    # Root reads any file, so the CLI runs as `nobody` on a file only root may read.
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        cfg = Path(d) / "Caddyfile"
        cfg.write_text(":80\n")
        cfg.chmod(0o600)
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                str(zeroserve_bin),
                "adapt",
                "--config",
                str(cfg),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert_one_line_error(proc, "permission denied")


def test_directory_as_config(zeroserve_bin, tmp_path):
    proc = run_cli(zeroserve_bin, "adapt", "--config", str(tmp_path))
    assert_one_line_error(proc, "is a directory")


def test_unknown_subcommand(zeroserve_bin):
    assert_one_line_error(run_cli(zeroserve_bin, "frobnicate"), 'unknown command "frobnicate"')


def test_unknown_flag(zeroserve_bin, tmp_path):
    proc = run_cli(zeroserve_bin, "adapt", "--bogus", "--config", str(tmp_path / "Caddyfile"))
    assert_one_line_error(proc, "--bogus")


def test_missing_required_flag(zeroserve_bin):
    assert_one_line_error(run_cli(zeroserve_bin, "adapt"), "--config")


def test_caddyfile_error_cites_file_and_line(zeroserve_bin, tmp_path):
    cfg = tmp_path / "Caddyfile"
    cfg.write_text("example.com {\n\trespond hi\n\tfrobnicate\n}\n")
    proc = run_cli(zeroserve_bin, "adapt", "--config", "Caddyfile", cwd=tmp_path)
    assert_one_line_error(proc, "Caddyfile:3: unrecognized directive: frobnicate")
