"""Log lines Caddy writes while adapting, rather than returning them as warnings.

Caddy's directive code calls `caddy.Log()` directly for deprecations and advice
("the 'basicauth' directive is deprecated, ..."), so those lines reach stderr in
the order the adapter meets them and carry a logger name but no file or line.
`collecting()` gathers them for one adaptation; `warn()` is called at the point
Caddy logs. Outside `collecting()` a record has nowhere to go and is dropped, as
Caddy's lines would be with logging off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

# the loggers Caddy uses during adapt ("" is caddy.Log() itself, which has no name)
ADAPTER_LOGGER = "config.adapter.caddyfile"
CADDYFILE_LOGGER = "caddyfile"
DEFAULT_LOGGER = ""


@dataclass(frozen=True)
class LogRecord:
    level: str
    logger: str
    msg: str
    fields: dict[str, Any] = field(default_factory=dict)


_records: ContextVar[list[LogRecord] | None] = ContextVar("adapt_log_records", default=None)


@contextmanager
def collecting() -> Iterator[list[LogRecord]]:
    """The records logged inside the block; nested, it shares the outer block's list.

    Sharing lets a caller that must show the lines even when adapting fails (the
    CLI, as Caddy prints them before its error) hold the list adapt_caddyfile fills.
    """
    outer = _records.get()
    if outer is not None:
        yield outer
        return
    records: list[LogRecord] = []
    token = _records.set(records)
    try:
        yield records
    finally:
        _records.reset(token)


def warn(logger: str, msg: str, **fields: Any) -> None:
    records = _records.get()
    if records is not None:
        records.append(LogRecord("warn", logger, msg, fields))


def deprecated_name(old: str, new: str, kind: str = "directive") -> None:
    """Caddy's message for a directive (or subdirective) kept under its old name."""
    warn(ADAPTER_LOGGER, f"the '{old}' {kind} is deprecated, please use '{new}' instead!")
