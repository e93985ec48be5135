"""Render the BPF C entry templates under appliance/bpf/ with jinja2.

Templates only choose: feature flags, sizes and pin paths become `#define`s, and
the C in appliance/bpf/include/ does the work. Rules never reach a template;
they go into maps after load. A missing variable is an error, not an empty
string, so a template and its caller cannot drift apart silently.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

BPF_DIR = Path(__file__).resolve().parents[3] / "bpf"


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


def render(template: str, bpf_dir: Path = BPF_DIR, **context: Any) -> str:
    """C source of template (a path under bpf_dir, e.g. "xdp/entry.c.j2")."""
    return _env(bpf_dir).get_template(template).render(**context)


def include_cflags(bpf_dir: Path = BPF_DIR) -> list[str]:
    """Compiler flags that let rendered sources include the shared headers."""
    return [f"-I{bpf_dir / 'include'}"]
