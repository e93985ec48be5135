"""Caddyfile parser: tokens grouped into server blocks and segments.

Mirrors Caddy v2.11.7 `caddyconfig/caddyfile/parse.go` (`caddyfile.Parse`):

- ``{$NAME}`` / ``{$NAME:default}`` are replaced in the raw bytes before
  lexing (runtime ``{env.NAME}`` placeholders are left alone);
- a block whose only key is ``(name)`` defines a snippet; ``&(name)`` a named
  route; a keyless first block is the global options block;
- ``import`` splices in a snippet or the files matching a path/glob (relative
  to the importing file's directory), replacing ``{args[N]}``,
  ``{args[a:b]}``, ``{block}`` and ``{blocks.key}``; an import cycle is an
  error;
- nothing else: placeholder shorthands and directive meaning belong to the
  adapter.

The parser walks its token list with a `Dispenser` cursor and splices
imports into that list in place, exactly where Caddy does, because later
line and nesting decisions look at neighbouring tokens.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field

from zeroserve.caddyfile import importargs
from zeroserve.caddyfile.dispenser import Dispenser
from zeroserve.caddyfile.errors import CaddyfileError
from zeroserve.caddyfile.gofs import fast_abs, go_error_text, go_glob, go_join, is_abs
from zeroserve.caddyfile.lexer import WHITESPACE, Token, decode_go, is_next_on_new_line, tokenize

# caddy.Log(); zeroserve.adapt.adaptlog shows these (zap fields in extra) as Caddy does
log = logging.getLogger("caddy")

# Imports may legally fan out (a snippet importing another twice, and so on);
# Caddy expands without limit and runs out of memory or time on such an
# import bomb. We stop with an error instead, well above real configurations
# (a 10,000-line Caddyfile has about 50,000 tokens and at most a few
# thousand imports).
MAX_TOKENS = 500_000
MAX_IMPORTS = 50_000

_WS = "".join(WHITESPACE)


@dataclass(slots=True)
class ServerBlock:
    """The keys heading a block and its segments (one per directive line/block)."""

    keys: list[Token] = field(default_factory=list)
    segments: list[list[Token]] = field(default_factory=list)
    is_named_route: bool = False
    has_braces: bool = False

    def get_keys_text(self) -> list[str]:
        return [key.text for key in self.keys]

    def dispense_directive(self, directive: str) -> Dispenser:
        """A dispenser over every segment of `directive` in this block."""
        tokens: list[Token] = []
        for segment in self.segments:
            if segment and segment[0].text == directive:
                tokens.extend(segment)
        return Dispenser(tokens)


def parse(filename: str, body: bytes) -> list[ServerBlock]:
    """Caddy's `caddyfile.Parse`: server blocks in order of appearance."""
    return _Parser(all_tokens(filename, body)).parse_all()


def all_tokens(filename: str, body: bytes) -> list[Token]:
    """Expand {$ENV} references, then lex."""
    return tokenize(replace_env_vars(body), filename)


def replace_env_vars(body: bytes) -> bytes:
    """Replace ``{$NAME}`` and ``{$NAME:default}`` with the environment's values.

    An unset variable without a default becomes empty; a replacement is not
    scanned again.
    """
    if b"{$" not in body:
        return body
    out: list[bytes] = []
    offset = 0
    environ = os.environb
    while True:
        begin = body.find(b"{$", offset)
        if begin < 0:
            break
        end = body.find(b"}", begin + 2)
        if end < 0:
            break
        name = body[begin + 2 : end]
        if not name:
            out.append(body[offset : end + 1])
            offset = end + 1
            continue
        key, sep, default = name.partition(b":")
        value = environ.get(key)
        if value is None:
            value = default if sep else b""
        out.append(body[offset:begin])
        out.append(value)
        offset = end + 1
    out.append(body[offset:])
    return b"".join(out)


class _ImportGraph:
    """Which file/snippet imports which, to refuse cycles (Caddy's importGraph)."""

    __slots__ = ("nodes", "edges")

    def __init__(self) -> None:
        self.nodes: set[str] = set()
        self.edges: dict[str, list[str]] = {}

    def add_edges(self, source: str, targets: list[str]) -> None:
        for target in targets:
            if self._reaches(target, source):
                raise CaddyfileError(f"a cycle of imports exists between {source} and {target}")
            known = self.edges.setdefault(source, [])
            if target not in known:
                known.append(target)

    def _reaches(self, start: str, goal: str) -> bool:
        """Whether `goal` is reachable from the neighbours of `start`."""
        seen: set[str] = set()
        stack = list(self.edges.get(start, ()))
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(self.edges.get(node, ()))
        return goal in seen


class _Parser(Dispenser):
    __slots__ = (
        "block",
        "eof",
        "defined_snippets",
        "block_nesting",
        "import_graph",
        "imports_done",
    )

    def __init__(self, tokens: list[Token]) -> None:
        super().__init__(tokens)
        self.block = ServerBlock()
        self.eof = False
        self.defined_snippets: dict[str, list[Token]] = {}
        # the parser's own brace depth, separate from the Dispenser's (as in Caddy)
        self.block_nesting = 0
        self.import_graph = _ImportGraph()
        self.imports_done = 0

    def parse_all(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while self.next():
            self.block = ServerBlock()
            self._begin()
            if self.block.keys or self.block.segments:
                blocks.append(self.block)
            if self.block_nesting > 0:
                raise self.eof_err()
        return blocks

    def _begin(self) -> None:
        if not self.tokens:
            return
        self._addresses()
        if self.eof:
            # the input ended with a line of addresses and nothing else
            return
        keys = self.block.keys
        if len(keys) == 1:
            text = keys[0].text
            if text.startswith("&(") and text.endswith(")"):
                self._named_route(text[2:-1])
                return
            if text.startswith("(") and text.endswith(")"):
                self._snippet(text[1:-1])
                return
        self._block_contents()

    def _named_route(self, name: str) -> None:
        name_token = self.token().clone()
        name_token.text = name
        self.block.keys = [name_token]
        self.block.is_named_route = True
        tokens = self._block_tokens(retain_curlies=True)
        self.block.segments = [[name_token, *tokens]]

    def _snippet(self, name: str) -> None:
        if name in self.defined_snippets:
            raise self.errf("redeclaration of previously declared snippet %s", name)
        tokens = self._block_tokens(retain_curlies=False)
        # tokens remember their snippet, so import cycles are tracked per snippet
        snippet_tokens = [t.clone() for t in tokens]
        for t in snippet_tokens:
            t.snippet_name = name
        self.defined_snippets[name] = snippet_tokens
        self.block.keys = []

    def _addresses(self) -> None:
        expecting_another = False
        keys = self.block.keys
        while True:
            value = self.val()
            token = self.token()
            if value.startswith("@"):
                raise self.errf(
                    "request matchers may not be defined globally, they must be in a site "
                    "block; found %s",
                    value,
                )
            if value == "import" and self.is_new_line():
                self._do_import(0)
                continue
            if value == "{" and not token.was_quoted:
                if expecting_another:
                    raise self.errf(
                        "Expected another address but had '%s' - check for extra comma", value
                    )
                self.block.has_braces = True
                break
            if value.endswith("{") and not token.was_quoted:
                raise self.errf(
                    "Site addresses cannot end with a curly brace: '%s' - put a space between "
                    "the token and the brace",
                    value,
                )
            if value:
                if value[-1] == ",":
                    value = value[:-1]
                    expecting_another = True
                else:
                    expecting_another = False
                if "," in value:
                    raise self.errf(
                        "Site addresses cannot contain a comma ',': '%s' - put a space after "
                        "the comma to separate site addresses",
                        value,
                    )
                if value:
                    key = token.clone()
                    key.text = value
                    keys.append(key)
            has_next = self.next()
            if expecting_another and not has_next:
                raise self.eof_err()
            if not has_next:
                self.eof = True
                break
            if not expecting_another and self.is_new_line():
                break

    def _block_contents(self) -> None:
        braced = self._is_brace("{")
        if not braced:
            # a single site needs no braces
            self.cursor -= 1
        self._directives()
        if braced and not self._is_brace("}"):
            raise self.syntax_err("}")

    def _directives(self) -> None:
        while self.next():
            token = self.tokens[self.cursor]
            value = token.text
            if value == "}" and not token.was_quoted:
                break
            if value == "import":
                self._do_import(1)
                # the loop's next() lands on the first imported token
                self.cursor -= 1
                continue
            self._directive()

    def _directive(self) -> None:
        segment = [self.tokens[self.cursor]]
        tokens = self.tokens
        while self.next():
            token = tokens[self.cursor]
            value = token.text
            # a quoted brace is an argument like any other (Caddy 2.11)
            brace = value if value in ("{", "}") and not token.was_quoted else ""
            if brace == "{":
                self.block_nesting += 1
                if not self.is_next_on_new_line() and not token.was_quoted:
                    raise self.err("Unexpected next token after '{' on same line")
                if self.is_new_line():
                    raise self.err(
                        "Unexpected '{' on a new line; did you mean to place the '{' on the "
                        "previous line?"
                    )
            elif value == "{}":
                if self.is_next_on_new_line() and not token.was_quoted:
                    raise self.err("Unexpected '{}' at end of line")
            elif self.is_new_line() and self.block_nesting == 0:
                self.cursor -= 1
                break
            elif brace == "}" and self.block_nesting > 0:
                self.block_nesting -= 1
            elif brace == "}" and self.block_nesting == 0:
                raise self.err("Unexpected '}' because no matching opening brace")
            elif value == "import" and self.is_new_line():
                self._do_import(1)
                self.cursor -= 1
                tokens = self.tokens
                continue
            segment.append(token)
        self.block.segments.append(segment)
        if self.block_nesting > 0:
            raise self.eof_err()

    def _block_tokens(self, retain_curlies: bool) -> list[Token]:
        """Everything in the block opening at the cursor, for later replay."""
        if not self._is_brace("{"):
            if (
                self.val() == "import"
                and self.block.keys
                and all(k.text.startswith("(") and k.text.endswith(")") for k in self.block.keys)
            ):
                # "(snippet)" keys then an import: a late global options block, most likely
                raise self.err(
                    "global options block must appear before import directives; move the "
                    "global options block to the top of the Caddyfile"
                )
            raise self.syntax_err("{")
        nesting = 1
        tokens: list[Token] = []
        if retain_curlies:
            tokens.append(self.token())
        while self.next():
            token = self.tokens[self.cursor]
            if token.text == "}" and not token.was_quoted:
                nesting -= 1
                if nesting == 0:
                    if retain_curlies:
                        tokens.append(token)
                    break
            if token.text == "{" and not token.was_quoted:
                nesting += 1
            tokens.append(token)
        if nesting != 0:
            raise self.syntax_err("}")
        return tokens

    # --- import -------------------------------------------------------------

    def _do_import(self, nesting: int) -> None:
        """Replace the import statement with the imported tokens.

        Afterwards the cursor is on the first imported token (the statement's
        tokens before it may linger in the list, as in Caddy).
        """
        self.imports_done += 1
        if self.imports_done > MAX_IMPORTS:
            raise self.errf("more than %d imports", MAX_IMPORTS)
        if not self.next_arg():
            raise self.arg_err()
        pattern = self.val()
        if pattern == "":
            raise self.err("Import requires a non-empty filepath")
        args = self.remaining_args()

        block_tokens: list[Token] = []
        outer = self.nesting()
        while self.next_block(outer):
            block_tokens.append(self.token())
        block_mapping = self._block_mapping(block_tokens)

        cut_start = self.cursor - 1 - len(args) - len(block_tokens)
        cut_end = self.cursor + 1

        nodes: list[str]
        if pattern in self.defined_snippets:
            imported = self.defined_snippets[pattern]
            nodes = [f"{imported[0].file}:{imported[0].snippet_name}"] if imported else []
        else:
            imported, nodes = self._import_files(pattern)

        current = self.token()
        node_name = current.file
        if current.snippet_name:
            node_name += ":" + current.snippet_name
        self.import_graph.nodes.add(node_name)
        self.import_graph.nodes.update(nodes)
        try:
            self.import_graph.add_edges(node_name, nodes)
        except CaddyfileError:
            self.import_graph.nodes.difference_update(nodes)
            raise

        spliced = self._expand(imported, args, block_tokens, block_mapping, nesting)
        if len(self.tokens) + len(spliced) > MAX_TOKENS:
            raise self.errf("imports expand to more than %d tokens", MAX_TOKENS)
        self.tokens[cut_start:cut_end] = spliced
        self.cursor -= len(args) + len(block_tokens) + 1

    def _block_mapping(self, block_tokens: list[Token]) -> dict[str, list[Token]]:
        """``{blocks.key}`` contents: each line of the import block, keyed by its first token."""
        mapping: dict[str, list[Token]] = {}
        if not block_tokens:
            return mapping
        sub = Dispenser(block_tokens)
        while sub.next():
            key = sub.val()
            if sub._is_brace("{"):
                raise self.err("anonymous blocks are not supported")
            tokens = sub.remaining_args_as_tokens()
            inner = sub.nesting()
            while sub.next_block(inner):
                tokens.append(sub.token())
            mapping[key] = tokens
        return mapping

    def _import_files(self, pattern: str) -> tuple[list[Token], list[str]]:
        glob_pattern = pattern
        if not is_abs(pattern):
            glob_pattern = go_join(os.path.dirname(fast_abs(self.file())), pattern)
        if (
            glob_pattern.count("*") > 1
            or glob_pattern.count("?") > 1
            or ("[" in glob_pattern and "]" in glob_pattern)
        ):
            # many wildcards can make globbing hang (Caddy issue #2096)
            raise self.errf(
                "Glob pattern may only contain one wildcard (*), but has others: %s", glob_pattern
            )
        try:
            matches = go_glob(glob_pattern)
        except ValueError as exc:
            raise self.errf("Failed to use import pattern %s: %v", pattern, exc) from None
        if not matches:
            if any(ch in glob_pattern for ch in "*?[]"):
                log.warning(
                    "No files matching import glob pattern", extra={"fields": {"pattern": pattern}}
                )
            else:
                raise self.errf("File to import not found: %s", pattern)
        elif os.path.basename(glob_pattern).startswith("*"):
            # a leading wildcard skips dotfiles (Caddy issue #5295)
            matches = [m for m in matches if not os.path.basename(m).startswith(".")]
        imported: list[Token] = []
        for path in matches:
            imported.extend(self._single_import(path))
        return imported, matches

    def _single_import(self, path: str) -> list[Token]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except ValueError:
            # a NUL byte in the path: the kernel would say EINVAL, as Go reports
            raise self.errf("Could not import %s: open %s: invalid argument", path, path) from None
        except OSError as exc:
            reason = go_error_text("open", path, exc)
            raise self.errf("Could not import %s: %v", path, reason) from None
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise self.errf("Could not import %s: is a directory", path)
            chunks: list[bytes] = []
            try:
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
            except OSError as exc:
                raise self.errf(
                    "Could not read imported file %s: %v", path, go_error_text("read", path, exc)
                ) from None
        finally:
            os.close(fd)
        body = b"".join(chunks)
        if not decode_go(body).strip(_WS):
            log.warning("Import file is empty", extra={"fields": {"file": path}})
            return []
        try:
            tokens = all_tokens(path, body)
        except CaddyfileError as exc:
            raise self.errf("Could not read tokens while importing %s: %v", path, exc) from None
        absolute = fast_abs(path)
        for token in tokens:
            token.file = absolute
        return tokens

    def _expand(
        self,
        imported: list[Token],
        args: list[str],
        block_tokens: list[Token],
        block_mapping: dict[str, list[Token]],
        nesting: int,
    ) -> list[Token]:
        """The imported tokens with their import chain, args and blocks filled in.

        Snippet definitions inside an imported file keep their ``{block}`` and
        args untouched: those belong to the snippet's own future imports.
        """
        here = f"{self.file()}:{self.line()}"
        out: list[Token] = []
        maybe_snippet = maybe_snippet_id = False
        index = 0
        arg_count = len(args)
        replace = importargs.make_replacer(args)
        for position, token in enumerate(imported):
            if token.snippet_name:
                chain = f"{here} (import {token.snippet_name})"
            else:
                chain = f"{here} (import)"
            token = token.clone()
            token.imports = (*token.imports, chain)
            text = token.text
            # a naive snippet detector: "(name)" first on a line, then "{"
            if not maybe_snippet and nesting == 0:
                if out:
                    new_line = is_next_on_new_line(out[-1], token)
                elif position:
                    # Caddy indexes the last expanded token here and panics
                    raise CaddyfileError("runtime error: index out of range [-1]")
                else:
                    new_line = True
                if new_line:
                    index = 0
                else:
                    index += 1
                if index == 0 and len(text) >= 3 and text[0] == "(" and text[-1] == ")":
                    maybe_snippet_id = True
            quoted = token.was_quoted
            if text == "{" and not quoted:
                nesting += 1
                if index == 1 and maybe_snippet_id and nesting == 1:
                    maybe_snippet = True
                    maybe_snippet_id = False
            elif text == "}" and not quoted:
                nesting -= 1
                if nesting == 0 and maybe_snippet:
                    maybe_snippet = False

            if text == "{block}":
                if maybe_snippet:
                    out.append(token)
                else:
                    out.extend(block_tokens)
                continue
            if text.startswith("{blocks.") and text.endswith("}"):
                if maybe_snippet:
                    out.append(token)
                else:
                    out.extend(block_mapping.get(text[8:-1], ()))
                continue
            if maybe_snippet:
                out.append(token)
                continue
            span = importargs.parse_variadic(token, arg_count)
            if span is not None:
                for arg in args[span[0] : span[1]]:
                    copy = token.clone()
                    copy.text = arg
                    out.append(copy)
                continue
            if "{" in text:
                token.text = replace(text)
            out.append(token)
        return out
