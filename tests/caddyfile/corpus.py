"""The shared upstream adapt fixtures, split into Caddyfile and expectation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support import SHARED

CORPUS = SHARED / "caddy-corpus"
ADAPT_DIR = CORPUS / "adapt"


@dataclass(frozen=True)
class Fixture:
    name: str
    caddyfile: bytes
    expected: str

    @property
    def is_error(self) -> bool:
        return not self.expected.lstrip().startswith("{")


def load(path: Path) -> Fixture:
    text = path.read_bytes()
    head, _, tail = text.partition(b"\n----------")
    expected = tail.split(b"\n", 1)[1] if b"\n" in tail else b""
    return Fixture(path.name, head.strip() + b"\n", expected.decode().strip())


def fixtures() -> list[Fixture]:
    return [load(p) for p in sorted(ADAPT_DIR.iterdir()) if p.is_file()]
