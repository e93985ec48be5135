"""Mutated Caddyfiles either adapt or fail with a CaddyfileError: never another exception."""

from __future__ import annotations

import random

import pytest

from tests.adapt.corpus import fixtures
from tests.adapt.generated import generate
from zeroserve.adapt import adapt_caddyfile
from zeroserve.caddyfile.errors import CaddyfileError

SOURCES = [generate(i) for i in range(100)] + [f.caddyfile for f in fixtures()]
NOISE = [
    "{",
    "}",
    "*",
    "/x",
    "@m",
    "http://",
    ":0",
    "tls",
    "bind",
    "\n",
    "",
    "handle",
    "{path}",
    "`",
    '"',
    "import",
    "&(r)",
    "[::1]",
]


def mutate(rng: random.Random, text: str) -> str:
    words = text.replace("\n", " \n ").split(" ")
    for _ in range(rng.randint(1, 3)):
        if not words:
            break
        k = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            del words[k]
        elif op < 0.7:
            words.insert(k, rng.choice(words))
        else:
            words[k] = rng.choice(NOISE)
    return " ".join(words).replace(" \n ", "\n")


@pytest.mark.parametrize("seed", range(10))
def test_mutations_fail_cleanly(seed, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(seed)
    for _ in range(40):
        body = mutate(rng, rng.choice(SOURCES))
        try:
            adapt_caddyfile(body.encode())
        except CaddyfileError:
            pass
