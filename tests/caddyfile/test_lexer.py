"""tokenize: Caddy's lexer rules, its error texts, and its fast paths vs a plain rune loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.caddyfile.reference import lexed, reference_lexed
from zeroserve.caddyfile import CaddyfileError, tokenize


def lex(text: str | bytes) -> list[tuple[int, str]]:
    body = text.encode() if isinstance(text, str) else text
    return [(t.line, t.text) for t in tokenize(body, "Caddyfile")]


CASES = [
    ("host:123", [(1, "host:123")]),
    ("host:123\n\n\t\tdirective", [(1, "host:123"), (3, "directive")]),
    ("host:123 { directive }", [(1, "host:123"), (1, "{"), (1, "directive"), (1, "}")]),
    (
        "host {\n#comment\ndirective\n# comment\nfoobar # another\n}",
        [(1, "host"), (1, "{"), (3, "directive"), (5, "foobar"), (6, "}")],
    ),
    ("redir / /some/#/path", [(1, "redir"), (1, "/"), (1, "/some/#/path")]),
    ('a "quoted value" b\nfoobar', [(1, "a"), (1, "quoted value"), (1, "b"), (2, "foobar")]),
    ('A "quoted \\"value\\" inside" B', [(1, "A"), (1, 'quoted "value" inside'), (1, "B")]),
    ('x "newline\\\ninside" q', [(1, "x"), (1, "newline\\\ninside"), (2, "q")]),
    ("An escaped newline\\\noutside", [(1, "An"), (1, "escaped"), (1, "newline"), (1, "outside")]),
    ("line1\\\nescaped\nline2\nline3", [(1, "line1"), (1, "escaped"), (3, "line2"), (4, "line3")]),
    ('"unescapable\\ in quotes"', [(1, "unescapable\\ in quotes")]),
    ('"don\'t\\\\escape"', [(1, "don't\\\\escape")]),
    ("un\\escapable", [(1, "un\\escapable")]),
    ('"C:\\php\\php-cgi.exe"', [(1, "C:\\php\\php-cgi.exe")]),
    ('empty "" string', [(1, "empty"), (1, ""), (1, "string")]),
    ("skip those\r\nCR characters", [(1, "skip"), (1, "those"), (2, "CR"), (2, "characters")]),
    ("a\rb", [(1, "ab")]),
    ("\ufeff:8080", [(1, ":8080")]),
    (
        "multiline `backtick\nquoted\n` string",
        [(1, "multiline"), (1, "backtick\nquoted\n"), (3, "string")],
    ),
    (
        'nested `"quotes inside" backticks` x',
        [(1, "nested"), (1, '"quotes inside" backticks'), (1, "x")],
    ),
    (
        "heredoc <<EOF\ncontent\nEOF same-line-arg\n",
        [(1, "heredoc"), (1, "content"), (3, "same-line-arg")],
    ),
    ("heredoc <<EOF\nextra\n\nEOF x\n", [(1, "heredoc"), (1, "extra\n"), (4, "x")]),
    ("heredoc <<EOF\nEOF\n\tHERE x\n", [(1, "heredoc"), (1, ""), (3, "HERE"), (3, "x")]),
    (
        "prev\n\theredoc <<EOF\n\t\tmulti\n\t\tline\n\tEOF x\n\tnext\n",
        [(1, "prev"), (2, "heredoc"), (2, "\tmulti\n\tline"), (5, "x"), (6, "next")],
    ),
    ("escaped \\<< >>", [(1, "escaped"), (1, "<<"), (1, ">>")]),
    ("not <EOF\n\tcontent\n", [(1, "not"), (1, "<EOF"), (2, "content")]),
    ("not <<<EOF content", [(1, "not"), (1, "<<<EOF"), (1, "content")]),
    ("not << >>", [(1, "not"), (1, "<<"), (1, ">>")]),
    ("h <<EOF\nends mid lineEOF\nx", [(1, "h"), (1, ""), (3, "x")]),
    ("x <<EOF\n", [(1, "x")]),
    # a backslash in a comment continues the logical line
    ("a # c\\\nb\nc", [(1, "a"), (1, "b"), (3, "c")]),
    ("\\#not\nb", [(1, "b")]),
    ("a\\ b", [(1, "a"), (1, "b")]),
    (b"x \xe2\x82y", [(1, "x"), (1, "\ufffd\ufffdy")]),
    ("\x1cword\x1c", [(1, "\x1cword\x1c")]),
    ("a\u2003b", [(1, "a"), (1, "b")]),
    ('"unterminated', [(1, "unterminated")]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=range(len(CASES)))
def test_tokens(text, expected):
    assert lex(text) == expected


def test_token_fields():
    tokens = tokenize(b'a "b" `c` <<EOF\n  d\n  EOF', "F")
    assert [(t.text, t.was_quoted, t.heredoc_marker, t.file) for t in tokens] == [
        ("a", "", "", "F"),
        ("b", '"', "", "F"),
        ("c", "`", "", "F"),
        ("d", "<", "EOF", "F"),
    ]
    assert tokens[3].num_line_breaks() == 2
    assert tokens[1].quoted() and not tokens[0].quoted()


ERRORS = [
    (b"", "EOF"),
    (
        b"not-a-heredoc <<\n",
        "missing opening heredoc marker on line #1; must contain only alphanumeric characters,"
        " dashes and underscores; got empty string",
    ),
    (b"h <<<EOF\nx\nEOF", "too many '<' for heredoc on line #1; only use two, for example <<END"),
    (
        b"a\nh <<END!\nx\nEND!",
        "heredoc marker on line #2 must contain only alphanumeric characters, dashes and "
        "underscores; got 'END!'",
    ),
    (b"h <<EOF\n\tcontent\n", "incomplete heredoc <<EOF on line #3, expected ending marker EOF"),
    (
        b"h <<EOF\n\tcontent\n\t\tEOF\n",
        "mismatched leading whitespace in heredoc <<EOF on line #2 [\tcontent], expected "
        "whitespace [\t\t] to match the closing marker",
    ),
    (
        b"h <<EOF\n\t\tok\n\t\n\t\tEOF",
        "mismatched leading whitespace in heredoc <<EOF on line #3 [\t], expected whitespace "
        "[\t\t] to match the closing marker",
    ),
]


@pytest.mark.parametrize(("body", "message"), ERRORS, ids=range(len(ERRORS)))
def test_errors(body, message):
    with pytest.raises(CaddyfileError) as err:
        tokenize(body, "Caddyfile")
    assert str(err.value) == message


ALPHABET = st.sampled_from(
    list('ab{}#"`\\< \t\n\r') + ["<<", "EOF", "<<EOF\n", "\tEOF", "  EOF", "\u00a0", "\ufeff", "é"]
)


@settings(max_examples=3000, derandomize=True, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_fast_paths_agree_with_rune_loop(text):
    body = text.encode()
    assert lexed(body) == reference_lexed(body)


@settings(max_examples=1000, derandomize=True, deadline=None)
@given(st.binary(min_size=1, max_size=80))
def test_fast_paths_agree_on_bytes(body):
    assert lexed(body) == reference_lexed(body)
