"""Fuzz the Caddyfile front end: any input lexes/parses or raises CaddyfileError.

Usage: python bench/fuzz_caddyfile.py [--count N] [--seed S] [--max-len B] [--crash-dir D]

Inputs are mutations of the shared upstream fixtures and examples/Caddyfile
(byte flips, inserted syntax fragments, deleted/duplicated spans, splices of
two seeds) plus fully random bytes. Each input must

- parse (env substitution, lexing, imports, grouping) or raise CaddyfileError,
- lex to exactly what the plain rune-loop transcription of Caddy's lexer
  (tests/caddyfile/reference.py) gives, and
- format to exactly what the rune-loop transcription of Caddy's formatter gives,

each within a time budget, under an address-space limit. The first failing
input is written to --crash-dir and the run exits 1. It runs in a scratch
working directory so relative imports in generated input cannot read the
repository. One core, niced; about 3,000 inputs a second, so a million take
a few minutes.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "appliance" / "agent"))
sys.path.insert(0, str(REPO))

from tests.caddyfile.reference import lexed, reference_format, reference_lexed  # noqa: E402

from zeroserve.caddyfile import CaddyfileError, parse  # noqa: E402
from zeroserve.caddyfile.format import format_caddyfile  # noqa: E402

SEED_DIRS = (REPO.parent / "shared" / "caddy-corpus" / "adapt",)
SEED_FILES = (REPO / "examples" / "Caddyfile",)

FRAGMENTS = [
    b"{",
    b"}",
    b"\n",
    b" ",
    b"\t",
    b"\r",
    b"\\",
    b"\\\n",
    b"#",
    b'"',
    b"`",
    b"<<",
    b"<<EOF\n",
    b"EOF",
    b"  EOF",
    b"\tEOF",
    b"<<<X\n",
    b"import",
    b"import s",
    b"import a/*",
    b"(s)",
    b"&(r)",
    b"@m",
    b",",
    b"{args[0]}",
    b"{args[:]}",
    b"{args[1:2]}",
    b"{args.0}",
    b"{block}",
    b"{blocks.k}",
    b"{$HOME}",
    b"{$UNSET:d}",
    b"{$}",
    b"\\{",
    b"\\}",
    b"{}",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xe2\x82",
    b"\xc2\xa0",
    b"\x1c",
    b"*",
    b"?",
    b"[",
    b"]",
    b"\x00",
]

TIME_BUDGET_S = 2.0
ADDRESS_SPACE = 2 << 30


def load_seeds() -> list[bytes]:
    seeds: list[bytes] = [b"a {\n\trespond x\n}\n"]
    for directory in SEED_DIRS:
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                seeds.append(path.read_bytes().split(b"\n----------")[0])
    seeds += [p.read_bytes() for p in SEED_FILES if p.exists()]
    return seeds


def mutate(rnd: random.Random, seeds: list[bytes], max_len: int) -> bytes:
    if rnd.random() < 0.05:
        return rnd.randbytes(rnd.randint(0, 64))
    data = bytearray(rnd.choice(seeds))
    for _ in range(rnd.randint(1, 8)):
        op = rnd.randrange(6)
        pos = rnd.randint(0, len(data))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rnd.randrange(256)
        elif op in (1, 2):
            data[pos:pos] = rnd.choice(FRAGMENTS)
        elif op == 3 and data:
            del data[pos : pos + rnd.randint(1, 32)]
        elif op == 4 and data:
            span = data[pos : pos + rnd.randint(1, 64)]
            data[pos:pos] = span
        elif op == 5:
            other = rnd.choice(seeds)
            cut = rnd.randint(0, len(other))
            data[pos:] = other[cut:]
    return bytes(data[:max_len])


def check(data: bytes) -> None:
    """Raise AssertionError (or whatever escaped) if `data` breaks a property."""
    start = time.monotonic()
    try:
        parse("Caddyfile", data)
    except CaddyfileError as exc:
        assert str(exc), "empty error message"
    got = lexed(data)
    if got != reference_lexed(data):
        raise AssertionError(f"lexer differs from the rune loop: {got!r}")
    if format_caddyfile(data) != reference_format(data):
        raise AssertionError("formatter differs from the rune loop")
    elapsed = time.monotonic() - start
    assert elapsed < TIME_BUDGET_S, f"took {elapsed:.1f}s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000, help="inputs to try")
    ap.add_argument("--seed", type=int, default=0, help="random seed (0 = from time)")
    ap.add_argument("--max-len", type=int, default=4096, help="longest input in bytes")
    ap.add_argument("--crash-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args(argv)

    # the parser logs Caddy's warnings (unmatched globs, bad arg indices): noise here
    logging.disable(logging.WARNING)
    seed = args.seed or int(time.time())
    rnd = random.Random(seed)
    seeds = load_seeds()
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    os.nice(10)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        for i in range(args.count):
            data = mutate(rnd, seeds, args.max_len)
            try:
                check(data)
            except BaseException as exc:  # noqa: BLE001 - any escape is the finding
                if isinstance(exc, KeyboardInterrupt):
                    raise
                crash = args.crash_dir / f"caddyfile-crash-{seed}-{i}"
                crash.write_bytes(data)
                traceback.print_exc()
                print(f"FAIL input #{i} (seed {seed}) saved to {crash}", file=sys.stderr)
                return 1
            if (i + 1) % 100_000 == 0:
                rate = (i + 1) / (time.monotonic() - started)
                print(f"{i + 1} inputs, {rate:.0f}/s", file=sys.stderr)
    elapsed = time.monotonic() - started
    print(f"ok: {args.count} inputs (seed {seed}) in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
