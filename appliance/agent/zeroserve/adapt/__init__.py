"""Caddyfile → Caddy JSON, like Caddy's `httpcaddyfile` server type.

`adapt_caddyfile()` is `caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}.Adapt`:
parse, set up the config, then add the "not formatted" warning. `adapt_config()`
picks the adapter the way the CLI does.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from zeroserve.adapt.adaptlog import LogRecord, collecting
from zeroserve.adapt.helper import Warning
from zeroserve.caddyfile.errors import CaddyfileError

__all__ = ["AdaptResult", "Warning", "adapt_caddyfile", "adapt_config"]

_NOT_FORMATTED = (
    "Caddyfile input is not formatted; run 'caddy fmt --overwrite' to fix inconsistencies"
)


@dataclass
class AdaptResult:
    config: dict[str, Any]
    warnings: list[Warning] = field(default_factory=list)
    # lines Caddy logs (not returns) while adapting, in order; see adaptlog.py
    logs: list[LogRecord] = field(default_factory=list)


def _formatting_difference(filename: str, body: bytes) -> Warning | None:
    from zeroserve.caddyfile.format import format_caddyfile

    normalized = body.replace(b"\r\n", b"\n")
    formatted = format_caddyfile(normalized)
    if formatted == normalized:
        return None
    line = 1
    for i, ch in enumerate(normalized):
        if i >= len(formatted) or ch != formatted[i]:
            break
        if ch == 0x0A:
            line += 1
    return Warning(filename, line, "", _NOT_FORMATTED)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold back Python's cycle collector for the duration (it is re-enabled after).

    Adapting builds some 10^5 tokens, dicts and lists that all stay alive until the
    end and form almost no cycles, so each collection finds nothing to free yet
    traverses more of them: that was a tenth of the time of adapting a large Caddyfile.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def adapt_caddyfile(body: bytes, filename: str = "Caddyfile") -> AdaptResult:
    """Adapt a Caddyfile; raises CaddyfileError with Caddy's message on bad input."""
    from zeroserve.adapt.httptype import setup
    from zeroserve.caddyfile.parser import parse

    with _collector_paused(), collecting() as logs:
        server_blocks = parse(filename or "Caddyfile", body)
        config, warnings = setup(server_blocks, {})
        diff = _formatting_difference(filename or "Caddyfile", body)
    if diff is not None:
        warnings.append(diff)
    return AdaptResult(config, warnings, logs)


def is_caddyfile_name(filename: str) -> bool:
    """Caddy's rule for picking the caddyfile adapter from a config file name."""
    base = PurePath(filename).name.lower()
    named = base.startswith("caddyfile") or base.endswith(".caddyfile")
    return named and PurePath(base).suffix != ".json"


def adapt_config(body: bytes, filename: str, adapter: str | None) -> AdaptResult:
    """Adapt `body` with the named adapter, or the one its file name implies when None.

    "json" (or a non-Caddyfile name without an adapter) is Caddy's native JSON and
    passes through unchanged.
    """
    if adapter is None:
        adapter = "caddyfile" if is_caddyfile_name(filename) else "json"
    if adapter == "caddyfile":
        return adapt_caddyfile(body, filename)
    if adapter == "json":
        try:
            config = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CaddyfileError(f"decoding JSON config: {exc}") from None
        return AdaptResult(config, [])
    raise CaddyfileError(f"unrecognized config adapter: {adapter}")
