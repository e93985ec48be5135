"""Token texts, line structure and ScalarVal against the real Caddy.

Caddy's `vars` directive turns each line of its block into ``name: ScalarVal(value)``
in the adapted JSON, which makes it an oracle for what the lexer produced. A random
value is put on each line; the same Caddyfile goes through `caddy adapt` and through
our parse + Dispenser walking the block exactly as Caddy's vars unmarshaler does.
Either both fail with the same message, or both give the same map.
"""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.caddyfile.oracle import caddy_adapt
from zeroserve.caddyfile import CaddyfileError, Dispenser, parse

PIECES = st.sampled_from(
    [
        "a",
        "1",
        "2.5",
        "1e3",
        "true",
        "x y",
        " ",
        "\t",
        '"',
        "`",
        "\\",
        "\\\n",
        "#",
        "<",
        "<<",
        "<<E\n",
        "\nE",
        "E",
        "{",
        "}",
        "{x}",
        "é",
        "\u00a0",
        "\u2003",
        "\r",
        "\x1c",
        '\\"',
        "-",
        "0x1p2",
        "+5",
        "\u0085",
        "\u1680",
        "\u180e",
        "\u200b",
        "\u3000",
        "\x1f",
        "\x0b",
        "\u2028",
        '"{"',
        '"}"',
        " {\n",
        "\n}",
    ]
)
VALUES = st.lists(st.lists(PIECES, min_size=1, max_size=6).map("".join), min_size=1, max_size=4)


def caddyfile_for(values: list[str]) -> bytes:
    lines = [":80 {", "\tvars {"]
    lines += [f"\t\tk{i} {value}" for i, value in enumerate(values)]
    lines += ["\t}", "}"]
    return ("\n".join(lines) + "\n").encode()


def vars_like_caddy(body: bytes) -> dict | str | None:
    """Our prediction: the vars map, or the error text `caddy adapt` would print.

    None when the input is not a single site holding just the vars directive
    (stray braces or lines made more of it), or a value is not JSON-encodable.
    """
    try:
        blocks = parse("Caddyfile", body)
    except CaddyfileError as exc:
        return str(exc)
    segments = [seg for b in blocks for seg in b.segments if seg[0].text == "vars"]
    if not (len(blocks) == 1 and len(segments) == 1 and len(blocks[0].segments) == 1):
        return None
    d = Dispenser(segments[0])
    d.next()
    found: dict = {}

    def one(header: bool) -> None:
        if header and not d.next_arg():
            return
        name = d.val()
        if not d.next_arg():
            raise d.arg_err()
        found[name] = d.scalar()
        if d.next_arg():
            raise d.arg_err()

    try:
        one(True)
        while d.next_block(0):
            one(False)
    except CaddyfileError as exc:
        return f"parsing caddyfile tokens for 'vars': {exc}"
    if any(isinstance(v, float) and not math.isfinite(v) for v in found.values()):
        return None
    return found


def caddy_vars(body: bytes, cwd: Path) -> dict | str:
    config, error = caddy_adapt(body, cwd)
    if error is not None:
        return error
    routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
    [handler] = routes[0]["handle"]
    assert handler.pop("handler") == "vars"
    return handler


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(values=VALUES)
def test_vars_block_matches_caddy(values, tmp_path):
    body = caddyfile_for(values)
    ours = vars_like_caddy(body)
    assume(ours is not None)
    assert ours == caddy_vars(body, tmp_path), body
