"""Shared access to the upstream adapt fixtures (format: /work/shared/caddy-corpus/README.md)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(os.environ.get("ZEROSERVE_CADDY_CORPUS", "/work/shared/caddy-corpus"))
SEPARATOR = "----------"

# modules that only exist in upstream's Go test binary, and how fixtures use them
_MOCK_MARKERS = {
    "dns.providers.mock": ("dns mock", "acme_dns mock"),
    "tls.client_auth.verifier.dummy": ("verifier dummy",),
}


@dataclass
class Fixture:
    name: str
    caddyfile: str
    expected_json: dict | None
    expected_error: str | None

    def mock_module(self) -> str | None:
        """The test-only module this fixture needs, if any."""
        for module, markers in _MOCK_MARKERS.items():
            if any(m in self.caddyfile for m in markers):
                return module
        return None


def load_fixture(path: Path) -> Fixture:
    text = path.read_text()
    lines = text.split("\n")
    index = next(i for i, line in enumerate(lines) if line.strip() == SEPARATOR)
    caddyfile = "\n".join(lines[:index]).strip() + "\n"
    expectation = "\n".join(lines[index + 1 :]).strip()
    if expectation.startswith("{"):
        return Fixture(path.name, caddyfile, json.loads(expectation), None)
    return Fixture(path.name, caddyfile, None, expectation)


def fixtures() -> list[Fixture]:
    return [load_fixture(p) for p in sorted((CORPUS / "adapt").iterdir()) if p.is_file()]


def make_workdir(root: Path, caddyfile: str) -> Path:
    """<root>/caddy.ca.cer and <root>/work/{Caddyfile,testdata/}; returns the work dir."""
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(CORPUS / "caddy.ca.cer", root / "caddy.ca.cer")
    if not (work / "testdata").exists():
        shutil.copytree(CORPUS / "testdata", work / "testdata")
    (work / "Caddyfile").write_text(caddyfile)
    return work
