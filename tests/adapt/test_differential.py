"""Byte-for-byte comparison with the real `caddy adapt` (v2.11.7).

Same input file, same working directory: Caddy's stdout must equal our encoding
(compact, and `--pretty` for a sample), or both must fail with the same message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.adapt.corpus import fixtures, make_workdir
from tests.adapt.generated import generate, generate_tls
from tests.caddyfile.oracle import caddy_binary
from tests.support import REPO, clean_env
from zeroserve.adapt import adapt_caddyfile
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyjson import encode


@dataclass
class Outcome:
    stdout: bytes | None
    error: str | None
    # adapter warnings: (message, file, line)
    warnings: list[tuple[str, str, int]] | None = None


def caddy_adapt(config: Path, pretty: bool = False) -> Outcome:
    """`caddy adapt` in the config's directory: stdout, or the message of its error log line."""
    cmd = [str(caddy_binary()), "adapt", "--config", config.name, "--adapter", "caddyfile"]
    if pretty:
        cmd.append("--pretty")
    proc = subprocess.run(cmd, cwd=config.parent, capture_output=True, timeout=60, env=clean_env())
    records = []
    for line in proc.stderr.decode(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    if proc.returncode == 0:
        warnings = [
            (r["msg"], r["file"], r["line"])
            for r in records
            if r.get("level") == "warn" and "file" in r
        ]
        return Outcome(proc.stdout.removesuffix(b"\n"), None, warnings)
    for line in reversed(proc.stderr.decode(errors="replace").splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") == "error":
            return Outcome(None, record.get("msg", ""))
    return Outcome(None, proc.stderr.decode(errors="replace"))


def zeroserve_adapt(config: Path, pretty: bool = False) -> Outcome:
    """Our adapter on the same file, from the same working directory."""
    old = os.getcwd()
    os.chdir(config.parent)
    try:
        result = adapt_caddyfile(config.read_bytes(), config.name)
        warnings = [
            (f"{w.directive}: {w.message}" if w.directive else w.message, w.file, w.line)
            for w in result.warnings
        ]
        return Outcome(encode(result.config, pretty), None, warnings)
    except CaddyfileError as exc:
        return Outcome(None, str(exc))
    finally:
        os.chdir(old)


CORPUS = [f for f in fixtures() if f.mock_module() is None]
EXAMPLES = sorted(
    p
    for p in (REPO / "examples").rglob("*")
    if p.is_file() and (p.name.startswith("Caddyfile") or p.suffix == ".caddyfile")
)
GENERATED = range(300)
# hand-written cases, separated by "=====" lines
CASES = (Path(__file__).parent / "differential_cases.txt").read_text().split("\n=====\n")


def _no_pointers(message: str | None) -> str | None:
    return None if message is None else re.sub(r"\(0x[0-9a-f]+\)", "(0x)", message)


def _same(work: Path, pretty: bool = False) -> None:
    theirs = caddy_adapt(work / "Caddyfile", pretty)
    ours = zeroserve_adapt(work / "Caddyfile", pretty)
    if theirs.error is not None:
        # Go prints pointers in some messages (%#v); their values vary from run to run
        assert _no_pointers(ours.error) == _no_pointers(theirs.error)
    else:
        assert ours.error is None, ours.error
        assert ours.stdout == theirs.stdout
        assert ours.warnings == theirs.warnings


@pytest.mark.parametrize("fixture", CORPUS, ids=[f.name for f in CORPUS])
def test_corpus_bytes(fixture, tmp_path) -> None:
    _same(make_workdir(tmp_path, fixture.caddyfile))


@pytest.mark.parametrize("fixture", CORPUS[::10], ids=[f.name for f in CORPUS[::10]])
def test_corpus_pretty_bytes(fixture, tmp_path) -> None:
    _same(make_workdir(tmp_path, fixture.caddyfile), pretty=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(REPO)) for p in EXAMPLES])
def test_examples_bytes(path, tmp_path) -> None:
    _same(make_workdir(tmp_path, path.read_text()))


@pytest.mark.parametrize("index", GENERATED)
def test_generated_bytes(index, tmp_path) -> None:
    _same(make_workdir(tmp_path, generate(index)))


# one simple use of (nearly) every ordered directive, written in reverse order
_ORDERED_LINES = [
    "acme_server",
    "file_server",
    "php_fastcgi /php localhost:2",
    "reverse_proxy /rp localhost:1",
    "metrics /metrics",
    'respond "x"',
    "error /e 500",
    "abort /ab",
    'route {\n\t\trespond "r"\n\t}',
    'handle_path /hp/* {\n\t\trespond "hp"\n\t}',
    'handle /h {\n\t\trespond "h"\n\t}',
    "invoke named",
    "templates",
    "push",
    "encode gzip",
    "request_header X-Q a",
    "forward_auth /fa localhost:9 {\n\t\turi /auth\n\t}",
    "basic_auth /ba {\n\t\tbob $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG\n\t}",
    "try_files {path} /index.html",
    "uri strip_prefix /p",
    "rewrite /x /y",
    "method /m GET",
    "redir /a /b",
    "timeouts",
    "request_body {\n\t\tmax_size 1\n\t}",
    "header X-H a",
    "log_name n",
    "log_skip /ls",
    "log_append k v",
    "root * /srv",
    "fs myfs",
    "vars a b",
    "map {host} {x} {\n\t\tdefault y\n\t}",
]


def test_directive_order_bytes(tmp_path) -> None:
    body = "\n\t".join(_ORDERED_LINES)
    caddyfile = f'&(named) {{\n\trespond "n"\n}}\n\n:8080 {{\n\t{body}\n}}\n'
    _same(make_workdir(tmp_path, caddyfile))


@pytest.mark.parametrize("index", range(len(CASES)))
def test_case_bytes(index, tmp_path) -> None:
    _same(make_workdir(tmp_path, CASES[index].strip() + "\n"))


@pytest.mark.parametrize("index", range(200))
def test_generated_tls_bytes(index, tmp_path) -> None:
    _same(make_workdir(tmp_path, generate_tls(index)))
