"""Dispenser: Caddy's cursor semantics and error texts."""

from __future__ import annotations

from zeroserve.caddyfile import Dispenser, Token
from zeroserve.caddyfile.lexer import tokenize


def disp(text: str) -> Dispenser:
    return Dispenser.from_text(text)


def test_next_prev_and_reading():
    d = disp("dir1 arg1\ndir2")
    assert d.val() == "" and d.line() == 0 and d.file() == ""
    assert d.next() and (d.val(), d.line(), d.file()) == ("dir1", 1, "Testfile")
    assert d.next() and d.next() and d.val() == "dir2"
    assert not d.next() and d.val() == "dir2"
    assert d.prev() and d.val() == "arg1"
    assert d.prev() and not d.prev() and d.val() == ""


def test_next_arg_stops_at_line_end_and_brace():
    d = disp("dir1 a b {\n\tsub\n}\ndir2 c")
    d.next()
    assert d.remaining_args() == ["a", "b"]
    assert d.val() == "b" and not d.next_arg()
    assert d.next() and d.val() == "{"


def test_next_line():
    d = disp("a b\nc")
    d.next()
    assert not d.next_line()
    d.next()
    assert d.next_line() and d.val() == "c"


def test_next_block_walks_nested_blocks():
    d = disp("dir {\n\tsub1 x\n\tsub2 {\n\t\tdeep\n\t}\n}\nnext")
    d.next()
    seen = []
    nesting = d.nesting()
    while d.next_block(nesting):
        seen.append((d.val(), d.nesting()))
    assert seen == [("sub1", 1), ("x", 1), ("sub2", 1), ("{", 2), ("deep", 2), ("}", 1)]
    assert d.val() == "}" and d.nesting() == 0
    assert d.next() and d.val() == "next"


def test_next_block_without_block_and_empty_block():
    d = disp("dir a\nother {}\nthird {\n}")
    d.next()
    assert not d.next_block(0) and d.val() == "dir"
    d.next_arg()
    d.next()
    d.next_arg()
    assert d.val() == "{}"
    d.next()
    assert not d.next_block(0) and d.val() == "}"


def test_args_all_args_count():
    d = disp("dir a b c\nnext")
    d.next()
    assert d.count_remaining_args() == 3 and d.val() == "dir"
    assert d.args(2) == ["a", "b"]
    assert d.all_args(1) == ["c"]
    d.reset()
    d.next()
    assert d.all_args(2) is None and d.val() == "b"
    d.reset()
    d.next()
    assert d.args(4) is None


def test_val_raw_and_scalar():
    d = disp('d "q" `b` 42 -7 1.5e3 true x <<EOF\n\th\n\tEOF')
    d.next()
    got = []
    while d.next_arg():
        got.append((d.val_raw(), d.scalar(), d.is_quoted()))
    assert got == [
        ('"q"', "q", True),
        ("`b`", "b", True),
        ("42", 42, False),
        ("-7", -7, False),
        ("1.5e3", 1500.0, False),
        ("true", True, False),
        ("x", "x", False),
        ("h", "h", True),
    ]


def test_next_segment_includes_braces():
    d = disp("a 1 {\n\tb 2\n}\nc")
    d.next()
    seg = d.next_segment()
    assert [t.text for t in seg] == ["a", "1", "{", "b", "2", "}"]
    assert d.val() == "}"
    d2 = disp("a 1 {\n\tb\n}")
    d2.next()
    assert [t.text for t in d2.new_from_next_segment().tokens] == ["a", "1", "{", "b", "}"]


def test_delete_and_delete_n():
    d = disp("a b c d")
    d.next()
    d.next()
    assert [t.text for t in d.delete()] == ["a", "c", "d"] and d.val() == "a"
    d.next()
    d.next()
    assert [t.text for t in d.delete_n(2)] == ["a"] and d.cursor == 0
    assert d.delete_n(5) == d.tokens


def test_error_texts():
    d = disp("dir\nsub {")
    d.next()
    assert (
        str(d.arg_err())
        == "wrong argument count or unexpected line ending after 'dir', at Testfile:1"
    )
    d.next()
    d.next()
    assert str(d.arg_err()) == "unexpected token '{', expecting argument, at Testfile:2"
    assert str(d.syntax_err("}")) == (
        "syntax error: unexpected token '{', expecting '}', at Testfile:2 import chain: ['']"
    )
    assert str(d.eof_err()) == "unexpected EOF, at Testfile:2"
    assert str(d.errf("bad %s (%d) %v %q", "x", 3, ["a", "b"], 'y"')) == (
        'bad x (3) [a b] "y\\"", at Testfile:2'
    )
    assert str(d.wrap_err(ValueError("boom"))) == "boom, at Testfile:2"


def test_errors_name_the_import_chain():
    token = Token(
        "/etc/s.caddy", 4, "x", imports=("Caddyfile:2 (import s)", "Caddyfile:9 (import)")
    )
    d = Dispenser([token])
    d.next()
    assert str(d.err("nope")) == (
        "nope, at /etc/s.caddy:4 import chain ['Caddyfile:2 (import s)','Caddyfile:9 (import)']"
    )
    assert str(d.syntax_err("{")).endswith(
        "import chain: ['Caddyfile:2 (import s)','Caddyfile:9 (import)']"
    )


def test_tokens_from_other_files_are_on_new_lines():
    a = tokenize(b"dir x", "A")
    b = tokenize(b"y", "B")
    d = Dispenser(a + b)
    d.next()
    assert d.remaining_args() == ["x"]


def test_context():
    d = disp("x")
    assert d.get_context("k") is None and d.get_context_string("k") == ""
    d.set_context("k", "v")
    assert d.get_context_string("k") == "v"
