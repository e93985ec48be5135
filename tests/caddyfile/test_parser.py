"""parse: server blocks, snippets, imports, named routes, env, and Caddy's parse errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.caddyfile.oracle import caddy_adapt_error
from zeroserve.caddyfile import CaddyfileError, ServerBlock, parse


def shape(blocks: list[ServerBlock]) -> list[tuple[list[str], list[list[str]]]]:
    return [(b.get_keys_text(), [[t.text for t in s] for s in b.segments]) for b in blocks]


def parse_text(text: str, filename: str = "Caddyfile") -> list[ServerBlock]:
    return parse(filename, text.encode())


def test_global_options_and_sites():
    blocks = parse_text("{\n\tdebug\n}\n\na.com, b.com {\n\trespond x 200\n}\n")
    assert shape(blocks) == [
        ([], [["debug"]]),
        (["a.com", "b.com"], [["respond", "x", "200"]]),
    ]
    assert blocks[1].has_braces and not blocks[1].is_named_route
    assert [k.line for k in blocks[1].keys] == [5, 5]


def test_keys_continue_after_trailing_comma():
    assert shape(parse_text("a,\nb {\n}\n")) == [(["a", "b"], [])]


def test_site_without_braces():
    assert shape(parse_text("a.com\nrespond x\nfile_server {\n\troot /x\n}\n")) == [
        (["a.com"], [["respond", "x"], ["file_server", "{", "root", "/x", "}"]])
    ]


def test_keys_only():
    assert shape(parse_text("a.com b.com")) == [(["a.com", "b.com"], [])]


def test_nested_segments():
    blocks = parse_text("a {\n\treverse_proxy x {\n\t\theader_up A B\n\t}\n\tencode\n}\n")
    assert shape(blocks) == [
        (["a"], [["reverse_proxy", "x", "{", "header_up", "A", "B", "}"], ["encode"]])
    ]


def test_snippet_import_with_args_and_chain():
    text = "(s) {\n\trespond {args[0]} {args[1]}\n}\n\na {\n\timport s hello 201\n}\n"
    blocks = parse_text(text)
    assert shape(blocks) == [(["a"], [["respond", "hello", "201"]])]
    respond = blocks[0].segments[0][0]
    assert respond.imports == ("Caddyfile:6 (import s)",)
    assert respond.snippet_name == "s" and respond.line == 2


def test_variadic_args():
    text = (
        "(s) {\n\treverse_proxy {args[:]}\n\tr2 {args[1:]}\n\tr3 {args[:1]}\n}\n"
        "a {\n\timport s u1 u2 u3\n}\n"
    )
    assert shape(parse_text(text))[0][1] == [
        ["reverse_proxy", "u1", "u2", "u3"],
        ["r2", "u2", "u3"],
        ["r3", "u1"],
    ]


def test_args_placeholders_inside_text_and_escapes():
    text = (
        '(s) {\n\trespond "{args[0]}-{args.1}-{args[9]}-\\{args[0]\\}-{other}"\n}\n'
        "a {\n\timport s x y\n}\n"
    )
    [[segment]] = [b.segments for b in parse_text(text)]
    assert segment[1].text == "x-y-{args[9]}-{args[0]}-{other}"
    assert segment[1].was_quoted == '"'


def test_import_block_and_blocks():
    text = (
        "(s) {\n\theader {\n\t\t{block}\n\t}\n\trespond {blocks.body}\n"
        "\tlog {\n\t\t{blocks.log}\n\t}\n}\n"
        "a {\n\timport s {\n\t\tbody hi\n\t\tlog {\n\t\t\toutput stdout\n\t\t}\n\t}\n}\n"
    )
    segments = shape(parse_text(text))[0][1]
    assert segments[0][:3] == ["header", "{", "body"]
    # block tokens keep the importing site's (shorter) import chain, so Caddy
    # sees them on a new line: "hi" is its own segment, as with `caddy adapt`
    assert segments[1:] == [["respond"], ["hi"], ["log", "{", "output", "stdout", "}"]]


def test_unused_block_placeholders_disappear():
    text = "(s) {\n\theader {\n\t\tA b\n\t\t{block}\n\t\t{blocks.x}\n\t}\n}\na {\n\timport s\n}\n"
    assert shape(parse_text(text))[0][1] == [["header", "{", "A", "b", "}"]]


def test_named_route():
    blocks = parse_text("&(api) {\n\trespond ok\n}\n")
    assert blocks[0].is_named_route
    assert shape(blocks) == [(["api"], [["api", "{", "respond", "ok", "}"]])]


def test_snippet_is_not_a_block():
    assert parse_text("(s) {\n\trespond x\n}\n") == []


def test_env_substitution(monkeypatch):
    monkeypatch.setenv("ZS_SITE", "env.example")
    monkeypatch.delenv("ZS_MISSING", raising=False)
    text = "{$ZS_SITE} {\n\trespond {$ZS_MISSING:dflt} {$ZS_MISSING}x {env.HOME} {$}\n}\n"
    assert shape(parse_text(text)) == [
        (["env.example"], [["respond", "dflt", "x", "{env.HOME}", "{$}"]])
    ]


def test_file_imports_resolve_relative_to_importer(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "one.caddy").write_text("import two.caddy\n")
    (tmp_path / "sub" / "two.caddy").write_text("respond {args[0]}\n")
    (tmp_path / "Caddyfile").write_text("a {\n\timport sub/one.caddy\n}\n")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    blocks = parse(str(tmp_path / "Caddyfile"), (tmp_path / "Caddyfile").read_bytes())
    [[respond, placeholder]] = blocks[0].segments
    assert (respond.text, placeholder.text) == ("respond", "{args[0]}")
    assert respond.file == str(tmp_path / "sub" / "two.caddy")
    # like Caddy, a nested file import records only the innermost import statement
    assert respond.imports == (f"{tmp_path / 'sub' / 'one.caddy'}:1 (import)",)


def test_glob_imports_sorted_and_skip_dotfiles(tmp_path, monkeypatch):
    conf = tmp_path / "conf.d"
    conf.mkdir()
    for name, site in [("b.caddy", "b"), ("a.caddy", "a"), (".hidden.caddy", "h")]:
        (conf / name).write_text(f"{site} {{\n}}\n")
    (conf / "empty.caddy").write_text("  \n")
    monkeypatch.chdir(tmp_path)
    assert shape(parse_text("import conf.d/*\nimport nothing/*.x\n")) == [(["a"], []), (["b"], [])]


def test_missing_import_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CaddyfileError) as err:
        parse_text("a {\n\timport nothere\n}\n")
    assert str(err.value) == "File to import not found: nothere, at Caddyfile:2"


def test_snippet_cycle():
    text = "(a) {\n\timport b\n}\n(b) {\n\timport a\n}\nimport a\n"
    with pytest.raises(CaddyfileError) as err:
        parse_text(text)
    assert str(err.value) == "a cycle of imports exists between Caddyfile:b and Caddyfile:a"


PARSE_ERRORS = [
    "a {\n\tfoo {\n\tbar\n",
    "a {\n\tfoo\n\t}\n\t}\n",
    "a, {\n}\n",
    "a,b {\n}\n",
    "a{\n}\n",
    "a {\n\tfoo { bar\n}\n",
    "a {\n\tfoo\n\t{\n\t}\n}\n",
    "a {\n\tfoo {}\n}\n",
    "(x) {\n}\n(x) {\n}\n",
    "(x)\nfoo\n",
    "(x) {\n\tfoo {\n",
    "&(r)\n",
    "@m path /x\n",
    "a {\n\timport\n}\n",
    'a {\n\timport ""\n}\n',
    "a {\n\timport n*t*here\n}\n",
    "a {\n\timport x[\n}\n",
    "a {\n\timport s {\n\t\t{\n\t\t}\n\t}\n}\n",
    "a {\n\tfoo\n",
    "a,",
    "(a) {\n\timport a\n}\nb {\n\timport a\n}\n",
    "(s) {\n\timport s\n}\nimport s\n",
    "a {\n\trespond <<EOF\n\tx\n  EOF\n}\n",
    "import x {\n\tk {\n}\n",
    "a\nb {\n}\n",
    "",
    "(x)\nimport y\n",
    "(x) {\n}\n(y)\nimport x\n",
    "&(r)\nimport x\n",
    "(s) {\n{args[:]} a\n}\nimport s\n",
    # quoted braces are text, never structure
    '(s)\n"{"\nrespond x\n}\n',
    '&(r)\n"{"\nrespond x\n}\n',
    'a {\n\trespond x\n"}"\n',
    'a {\n\trespond x\n"}"\nb\n',
    ':80 {\n\thandle "{"\n\t\trespond x\n\t}\n}\n',
]


@pytest.mark.parametrize("text", PARSE_ERRORS, ids=range(len(PARSE_ERRORS)))
def test_parse_errors_match_caddy(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = text.encode()
    expected = caddy_adapt_error(body, tmp_path)
    assert expected is not None, "caddy accepted the input"
    try:
        parse("Caddyfile", body)
    except CaddyfileError as exc:
        assert str(exc) == expected
    else:
        assert not _is_parse_error(expected), expected


PARSE_MESSAGES = re.compile(
    r"syntax error:|unexpected EOF, at|Unexpected |Expected another address|Site addresses cannot"
    r"|request matchers may not be defined globally|redeclaration of previously declared"
    r"|a cycle of imports|after 'import'|Import requires|File to import not found|Glob pattern"
    r"|Failed to use import pattern|anonymous blocks|heredoc|^EOF$|Could not import"
)


def _is_parse_error(message: str) -> bool:
    return bool(PARSE_MESSAGES.search(message)) and "parsing caddyfile tokens" not in message


SOUP = st.sampled_from(
    [
        "a",
        "b.com",
        "respond",
        "x",
        "{",
        "}",
        "{}",
        "\n",
        "\n",
        "\n",
        " ",
        ",",
        "import",
        "import s",
        "(s)",
        "&(r)",
        "@m",
        "{args[0]}",
        "{args[:]}",
        "{block}",
        "{blocks.k}",
        "k",
        '"q"',
        '"{"',
        '"}"',
        "<<EOF\nx\nEOF",
        "#c",
        "\\\n",
    ]
)


@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=st.lists(SOUP, max_size=30).map(" ".join))
def test_random_structure_errors_match_caddy(text, tmp_path):
    body = text.encode()
    cwd = tmp_path / "soup"
    cwd.mkdir(exist_ok=True)
    expected = caddy_adapt_error(body, cwd)
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        parse("Caddyfile", body)
    except CaddyfileError as exc:
        assert expected is not None
        assert str(exc) == expected
    else:
        assert expected is None or not _is_parse_error(expected), expected
    finally:
        os.chdir(previous)


def test_import_from_imported_file_reports_full_path(tmp_path, monkeypatch):
    (tmp_path / "inc.caddy").write_text("import missing.caddy\n")
    (tmp_path / "Caddyfile").write_text("import inc.caddy\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CaddyfileError) as err:
        parse("Caddyfile", Path("Caddyfile").read_bytes())
    expected = caddy_adapt_error(Path("Caddyfile").read_bytes(), tmp_path)
    assert str(err.value) == expected


@pytest.mark.parametrize(
    "caddyfile",
    [
        "import a.caddy\n",
        "import self.caddy\n",
        "x {\n\timport a.caddy\n}\n",
        "(s) {\n\timport s2\n}\n(s2) {\n\timport t.caddy\n}\nimport s\n",
        "import d\n",
        "import d/*\n",
        "import bad.caddy\n",
    ],
)
def test_file_import_errors_match_caddy(caddyfile, tmp_path, monkeypatch):
    files = {
        "a.caddy": "import b.caddy\n",
        "b.caddy": "import a.caddy\n",
        "self.caddy": "import self.caddy\n",
        "t.caddy": "import s\n",
        "d/sub/x": "",
        "bad.caddy": "x <<E!\nE!\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    body = caddyfile.encode()
    expected = caddy_adapt_error(body, tmp_path)
    with pytest.raises(CaddyfileError) as err:
        parse("Caddyfile", body)
    assert str(err.value) == expected


def test_quoted_braces_are_keys_and_arguments():
    blocks = parse_text('a "{" "x{" {\n\theader X "{"\n\trespond "}"\n}\n')
    assert shape(blocks) == [(["a", "{", "x{"], [["header", "X", "{"], ["respond", "}"]])]
