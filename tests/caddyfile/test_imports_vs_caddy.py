"""Snippet and file imports (args, variadic args, blocks) against the real Caddy.

A snippet (defined inline, or in a file next to the Caddyfile) fills a `vars` block
from placeholders; a site imports it with random arguments and an optional block.
The adapted `vars` map, or the error, must be Caddy's (see test_tokens_vs_caddy).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.caddyfile.test_tokens_vs_caddy import caddy_vars, vars_like_caddy

VALUES = [
    "v",
    "{args[0]}",
    "{args[1]}",
    "{args[:]}",
    "{args[1:]}",
    "{args[:1]}",
    "\\{args[0]\\}",
    "{args.0}",
    "x{args[0]}y",
    "{args[0]}{args[1]}",
    "{args[5]}",
    "{args[a]}",
    "{block}",
    "{blocks.b}",
    "{blocks.c}",
    '"{args[0]} q"',
    "{args[0:9]}",
    "{x}",
    '"{"',
    '"}"',
]
ARGS = ["A", "B C", '"q r"', "{args[0]}", "1", "{block}"]
BLOCK_LINES = ["kb v", "kc {args[0]}", "b bv", "c {", "{", "d", 'kd "x"', '"{" q', 'k "}"']


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, str]:
    values = st.lists(st.sampled_from(VALUES), min_size=1, max_size=2).map(" ".join)
    lines = [f"\t\tk{i} {v}" for i, v in enumerate(draw(st.lists(values, min_size=1, max_size=4)))]
    if draw(st.booleans()):
        lines.append("\t\t" + draw(st.sampled_from(["{block}", "{blocks.b}", "{blocks.c}"])))
    snippet = "\n".join(["\tvars {", *lines, "\t}"])
    target = draw(st.sampled_from(["s", "snip.caddy"]))
    statement = f"\timport {target} " + " ".join(draw(st.lists(st.sampled_from(ARGS), max_size=3)))
    block = draw(st.lists(st.sampled_from(BLOCK_LINES), max_size=3))
    if block:
        statement += " {\n" + "\n".join("\t\t" + b for b in block) + "\n\t}"
    return snippet, f"(s) {{\n{snippet}\n}}\n:80 {{\n{statement}\n}}\n"


@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios())
def test_imports_match_caddy(scenario, tmp_path):
    snippet, caddyfile = scenario
    (tmp_path / "snip.caddy").write_text(snippet + "\n")
    body = caddyfile.encode()
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        ours = vars_like_caddy(body)
    finally:
        os.chdir(previous)
    assume(ours is not None)
    assert ours == caddy_vars(body, tmp_path), caddyfile


QUOTED_BRACE_CASES = [
    # a quoted brace in an imported file does not end a snippet definition
    ('(x) {\n\tvars {\n\t\tk "}"\n\t\tk2 {args[0]}\n\t}\n}\n', "import file.caddy A\n"),
    ('(x) {\n\tvars {\n\t\tk "{"\n\t\tk2 {args[0]}\n\t}\n}\n', "import file.caddy A\n"),
    # a quoted "{" line in an import block is a key, not an anonymous block
    ("", "(x) {\n\tvars {\n\t\t{blocks.{}\n\t}\n}\n"),
]


@pytest.mark.parametrize(("imported", "head"), QUOTED_BRACE_CASES)
def test_quoted_braces_in_imports_match_caddy(imported, head, tmp_path, monkeypatch):
    (tmp_path / "file.caddy").write_text(imported)
    body = (head + ':80 {\n\timport x B {\n\t\t"{" v\n\t}\n}\n').encode()
    monkeypatch.chdir(tmp_path)
    ours = vars_like_caddy(body)
    assert ours is not None
    assert ours == caddy_vars(body, tmp_path)
