"""Best-effort Caddyfile line numbers for routes of the adapted JSON.

The JSON has no positions, so a route is traced back by what survives
adaptation: the site (host matchers, listener ports) picks the server blocks, and
the handler names the directives that could have emitted it. Within a block the
n-th route of a directive maps to the n-th line starting with that directive,
which is right whenever the directive sort keeps their relative order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zeroserve.caddyfile.lexer import Token
from zeroserve.caddyfile.parser import parse

NO_LINE = "n/a"
_SCHEME_PORTS = {"http": 80, "https": 443}


@dataclass
class _Block:
    hosts: set[str]
    ports: set[int]
    starts: list[Token]  # tokens that begin a line: the directive positions
    used: set[int] = field(default_factory=set)


def _key(text: str) -> tuple[str, int]:
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    host, colon, port = rest.split("/", 1)[0].rpartition(":")
    if not colon or not port.isdigit():
        host, port = rest.split("/", 1)[0], ""
    if port:
        return host, int(port)
    return host, _SCHEME_PORTS.get(scheme, 443)


class LineIndex:
    def __init__(self, filename: str, body: bytes) -> None:
        self._blocks = []
        for block in parse(filename, body):
            keys = [_key(k.text) for k in block.keys]
            starts = []
            for segment in block.segments:
                previous = None
                for token in segment:
                    if previous is None or token.line != previous.line:
                        starts.append(token)
                    previous = token
            self._blocks.append(_Block({h for h, _ in keys if h}, {p for _, p in keys}, starts))

    def find(self, hosts: set[str], ports: set[int], directives: tuple[str, ...]) -> str:
        if hosts:
            blocks = [b for b in self._blocks if b.hosts & hosts]
        else:
            blocks = [b for b in self._blocks if not b.hosts and b.ports & ports]
            blocks = blocks or [b for b in self._blocks if b.ports & ports]
        for block in blocks:
            for i, token in enumerate(block.starts):
                if i not in block.used and token.text in directives:
                    block.used.add(i)
                    return f"{token.file}:{token.line}"
        return NO_LINE
