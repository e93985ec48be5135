"""Mutated directive cases (a token dropped, a line doubled, an odd argument added or swapped)
adapted by Caddy and by zeroserve: same JSON bytes or the same error message.

Slow (a thousand `caddy adapt` runs), so it runs with `make test-slow`. The seeds are fixed
so a run is reproducible; Caddy itself is not fully deterministic where it iterates a Go map
(the order in which two broken matchers of one set report), and these seeds avoid that.
"""

from __future__ import annotations

import random

import pytest

from tests.adapt import (
    test_directives_handlers,
    test_directives_matchers,
    test_directives_reverse_proxy,
)
from tests.adapt.directive_oracle import assert_adapts_like_caddy, site

BODIES = [
    *test_directives_handlers.CASES.values(),
    *test_directives_matchers.CASES.values(),
    *test_directives_reverse_proxy.CASES.values(),
]
EXTRA_ARGS = ["x", "0", "-1", "{", "1.5s", '""', "*", "off"]
REPLACEMENTS = ["0", "x", "-5", "9999999999999999999", "1d", "unlimited", "{env.X}"]


def _mutate(body: str, rng: random.Random) -> str:
    lines = body.strip("\n").split("\n")
    i = rng.randrange(len(lines))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip("\t"))]
    tokens = lines[i].split()
    op = rng.randrange(4)
    if op == 0 and tokens:
        del tokens[rng.randrange(len(tokens))]
    elif op == 1:
        lines.insert(i, lines[i])
        return "\n".join(lines)
    elif op == 2 and tokens:
        tokens.append(rng.choice(EXTRA_ARGS))
    elif op == 3 and len(tokens) > 1:
        tokens[rng.randrange(1, len(tokens))] = rng.choice(REPLACEMENTS)
    lines[i] = indent + " ".join(tokens)
    return "\n".join(lines)


def _variants(seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for body in BODIES:
        for _ in range(4):
            caddyfile = site(_mutate(body, rng))
            # unbalanced braces only test the parser, which has its own suite
            if caddyfile.count("{") == caddyfile.count("}") and caddyfile not in out:
                out.append(caddyfile)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [9, 10, 11, 12, 13])
def test_mutated_directives(seed: int, tmp_path, monkeypatch) -> None:
    for caddyfile in _variants(seed):
        assert_adapts_like_caddy(caddyfile, tmp_path, monkeypatch)
