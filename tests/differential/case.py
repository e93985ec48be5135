"""The differential case format: a Caddyfile plus the requests to send, as one data file.

A case file (`cases/NAME.case`) is three parts:

    # Free text saying what the case checks.      <- comment lines, '#'
    @ignore-header X-Now                          <- case options, '@' (optional)
    ----                                          <- a line of dashes: the Caddyfile follows
    {
        admin off
        default_bind 127.0.0.1
    }
    :{PORT} {
        respond "hi"
    }
    === plain_get                                 <- one section per request (or pipeline)
    GET / HTTP/1.1
    Host: example.com

Sections (`=== NAME [raw] [responses=N] [timeout=S]`) each go over a fresh connection;
`timeout` (default 2 s) is how long a silent server is waited for.

- Text form (default): the lines up to the first empty line are the request head, each sent
  with CRLF, then the empty line; the lines after it are the body, joined with "\\n".
- `raw`: the lines are concatenated as they are (line ends dropped), so every byte, CR, LF and
  malformed framing is written explicitly. Pipelined requests use this form.

Both forms understand the escapes `\\r \\n \\t \\0 \\\\ \\xHH`, and these placeholders:
`{PORT}` (the port of the server being asked), `{FIXTURES}` (the fixture site directory) and
`{UPSTREAM}` (host:port of the echo backend, see upstream.py) and `{FASTCGI}` (host:port of a
php-fpm pool, see fastcgi.py) in the Caddyfile,
`{REPEAT:N:text}` (text N times, for oversized requests) and `{PAUSE}` (send what came
before, wait a moment, then the rest: a client waiting for `100 Continue`).
`{REPEAT:N:text}` also works in the Caddyfile.

The number of responses to read is the number of requests found in the bytes sent (or
`responses=N`); reading stops early when the server closes the connection or goes quiet.

Options: `@ignore-header NAME` leaves a response header out of the comparison (values built
from `{time.*}`, say); the header must still be present on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.differential import fastcgi

CASES_DIR = Path(__file__).resolve().parent / "cases"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"

DEFAULT_TIMEOUT_S = 2.0
_SECTION = re.compile(r"^=== (\S+)((?: \S+)*)\s*$")
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[rnt0\\])")
_REPEAT = re.compile(rb"\{REPEAT:(\d+):([^}]*)\}")
_SIMPLE_ESCAPES = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"0": b"\0", b"\\": b"\\"}


class CaseError(Exception):
    """A malformed case file; the message names the file and line."""


@dataclass(frozen=True)
class Section:
    """One connection's worth of request bytes."""

    name: str
    parts: tuple[bytes, ...]  # sent one after another, with a pause between
    responses: int
    methods: tuple[str, ...]  # per expected response, for HEAD's bodiless replies
    timeout: float  # seconds of silence after which reading gives up

    def for_port(self, port: int) -> tuple[bytes, ...]:
        return tuple(p.replace(b"{PORT}", str(port).encode()) for p in self.parts)


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    caddyfile: str
    sections: tuple[Section, ...]
    ignore_headers: frozenset[str] = field(default_factory=frozenset)

    def caddyfile_with(self, fixtures: Path, upstream: str) -> str:
        """The Caddyfile with the fixture path and upstream filled in; each server fills in
        its own {PORT}."""
        text = self.caddyfile.replace("{FIXTURES}", str(fixtures)).replace("{UPSTREAM}", upstream)
        if "{FASTCGI}" in text:
            text = text.replace("{FASTCGI}", fastcgi.address())
        return text


def _unescape(text: bytes) -> bytes:
    def one(m: re.Match[bytes]) -> bytes:
        token = m.group(1)
        return bytes([int(token[1:], 16)]) if token.startswith(b"x") else _SIMPLE_ESCAPES[token]

    text = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), text)
    return _ESCAPE.sub(one, text)


def request_methods(data: bytes) -> list[str]:
    """The methods of the requests in `data`, found by walking its framing loosely.

    Only used to know how many responses to wait for and which are HEAD; the servers parse
    the bytes for real. Stops at the first thing that does not look like a request.
    """
    methods: list[str] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            end_lf = data.find(b"\n\n", pos)
            if end_lf < 0:
                break
            end, sep = end_lf, 2
        else:
            sep = 4
        head = data[pos:end]
        methods.append(head.split(b" ", 1)[0].decode("latin-1"))
        pos = end + sep
        lines = head.lower().split(b"\n")
        if any(ln.startswith(b"transfer-encoding:") and b"chunked" in ln for ln in lines):
            pos = _skip_chunked(data, pos)
        else:
            lengths = [
                ln.split(b":", 1)[1].strip() for ln in lines if ln.startswith(b"content-length:")
            ]
            if lengths and lengths[0].isdigit():
                pos += int(lengths[0])
    return methods


def _skip_chunked(data: bytes, pos: int) -> int:
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return len(data)
        try:
            size = int(data[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            return len(data)
        pos = eol + 2
        if size == 0:
            end = data.find(b"\r\n\r\n", pos - 2)
            return len(data) if end < 0 else end + 4
        pos += size + 2


def _section(name: str, opts: list[str], lines: list[str], where: str, line: int) -> Section:
    raw = "raw" in opts
    responses = None
    timeout = DEFAULT_TIMEOUT_S
    for opt in opts:
        if opt.startswith("responses="):
            responses = int(opt.split("=", 1)[1])
        elif opt.startswith("timeout="):
            timeout = float(opt.split("=", 1)[1])
        elif opt != "raw":
            raise CaseError(f"{where}:{line}: unknown section option {opt!r}")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise CaseError(f"{where}:{line}: section {name!r} has no request")
    if raw:
        text = "".join(lines)
    elif "" in lines:
        blank = lines.index("")
        head = "".join(ln + "\\r\\n" for ln in lines[:blank])
        text = head + "\\r\\n" + "\n".join(lines[blank + 1 :])
    else:
        text = "".join(ln + "\\r\\n" for ln in lines) + "\\r\\n"
    parts = tuple(_unescape(p.encode()) for p in text.split("{PAUSE}"))
    methods = request_methods(b"".join(parts))
    count = responses if responses is not None else max(len(methods), 1)
    methods += ["GET"] * (count - len(methods))
    return Section(name, parts, count, tuple(methods[:count]), timeout)


def parse_case(path: Path) -> Case:
    where = path.name
    lines = path.read_text().split("\n")
    description: list[str] = []
    ignore: set[str] = set()
    i = 0
    while i < len(lines) and not re.fullmatch(r"-{3,}\s*", lines[i]):
        ln = lines[i]
        if ln.startswith("#"):
            description.append(ln.lstrip("# ").rstrip())
        elif ln.startswith("@ignore-header "):
            ignore.add(ln.split(None, 1)[1].strip().lower())
        elif ln.strip():
            raise CaseError(f"{where}:{i + 1}: expected '#', '@' or a '----' line, got {ln!r}")
        i += 1
    if i == len(lines):
        raise CaseError(f"{where}: no '----' line before the Caddyfile")
    i += 1
    start = i
    while i < len(lines) and not lines[i].startswith("=== "):
        i += 1
    caddyfile = "\n".join(lines[start:i]).strip("\n") + "\n"
    caddyfile = _REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), caddyfile.encode()).decode()
    for needed in ("{PORT}", "admin off"):
        if needed not in caddyfile:
            # Without these, parallel cases would fight over ports and the admin endpoint.
            raise CaseError(f"{where}: the Caddyfile must contain {needed!r}")
    sections: list[Section] = []
    while i < len(lines):
        m = _SECTION.match(lines[i])
        if not m:
            raise CaseError(f"{where}:{i + 1}: expected '=== NAME [options]', got {lines[i]!r}")
        header_line = i + 1
        i += 1
        body_start = i
        while i < len(lines) and not lines[i].startswith("=== "):
            i += 1
        section = _section(m.group(1), m.group(2).split(), lines[body_start:i], where, header_line)
        if any(s.name == section.name for s in sections):
            raise CaseError(f"{where}:{header_line}: duplicate section name {section.name!r}")
        sections.append(section)
    if not sections:
        raise CaseError(f"{where}: no '=== NAME' request sections")
    return Case(
        name=path.stem,
        description=" ".join(description),
        caddyfile=caddyfile,
        sections=tuple(sections),
        ignore_headers=frozenset(ignore),
    )


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    return [parse_case(p) for p in sorted(directory.glob("*.case"))]
