"""Render the BPF C entry templates under appliance/bpf/ with jinja2.

Templates only choose: feature flags, sizes and pin paths become `#define`s, and
the C in appliance/bpf/include/ does the work. Rules never reach a template;
they go into maps after load. A missing variable is an error, not an empty
string, so a template and its caller cannot drift apart silently.

bcc rewrites map method calls (`table.lookup(&k)`) only in the main source
buffer, never in included files, so render() inlines our own `#include "x.h"`
lines (from appliance/bpf/include, each once) and marks each with `#line`, so
that clang's diagnostics still name the header and line. System headers
(`#include <...>`) stay includes.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

# The templates ship inside the package: zeroserve/bpf is a symlink to appliance/bpf in the
# source tree and a copy in the wheel (pyproject.toml includes it).
BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"


@cache
def _env(bpf_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(bpf_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


_LOCAL_INCLUDE = re.compile(r'^#include "([\w./-]+)"\s*$')


def render(template: str, bpf_dir: Path = BPF_DIR, **context: Any) -> str:
    """C source of template (a path under bpf_dir, e.g. "xdp/entry.c.j2"), headers inlined."""
    text = _env(bpf_dir).get_template(template).render(**context)
    return "\n".join(_inline(text, template, bpf_dir / "include", set())) + "\n"


def _inline(text: str, name: str, include_dir: Path, seen: set[str]) -> list[str]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LOCAL_INCLUDE.match(line)
        if not match:
            out.append(line)
            continue
        header = match.group(1)
        if header not in seen:
            seen.add(header)
            out.append(f'#line 1 "{header}"')
            out.extend(_inline((include_dir / header).read_text(), header, include_dir, seen))
        out.append(f'#line {number + 1} "{name}"')
    return out
