"""Log lines Caddy writes while adapting, rather than returning them as warnings.

Caddy's parser and directive code call `caddy.Log()` directly for deprecations
and advice ("the 'basicauth' directive is deprecated, ..."), so those lines reach
stderr in the order the adapter meets them, with a logger name and zap fields but
no file or line. Here they are Python log records on the "caddy" logger (Caddy's
unnamed root logger) or its children ("caddy.caddyfile" is
`caddy.Log().Named("caddyfile")`), zap fields in `extra={"fields": {...}}`; the
caddyfile package logs the same way without depending on this module.

`collecting()` gathers the records of one adaptation (per context, so concurrent
adaptations keep theirs apart). Outside it a record has nowhere to go and is
dropped, as Caddy's lines would be with logging off.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

ROOT_LOGGER = "caddy"
# the named loggers Caddy uses during adapt ("" is caddy.Log() itself)
ADAPTER_LOGGER = "config.adapter.caddyfile"
CADDYFILE_LOGGER = "caddyfile"
DEFAULT_LOGGER = ""

_ZAP_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
}


@dataclass(frozen=True)
class LogRecord:
    level: str
    logger: str
    msg: str
    fields: dict[str, Any] = field(default_factory=dict)


_records: ContextVar[list[LogRecord] | None] = ContextVar("adapt_log_records", default=None)


class _Collector(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        records = _records.get()
        if records is None:
            return
        name = record.name.removeprefix(ROOT_LOGGER).removeprefix(".")
        level = _ZAP_LEVELS.get(record.levelno, record.levelname.lower())
        records.append(
            LogRecord(level, name, record.getMessage(), dict(getattr(record, "fields", {})))
        )


_root = logging.getLogger(ROOT_LOGGER)
_root.addHandler(_Collector())
_root.propagate = False


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
    name = f"{ROOT_LOGGER}.{logger}" if logger else ROOT_LOGGER
    logging.getLogger(name).warning("%s", msg, extra={"fields": fields})


def deprecated_name(old: str, new: str, kind: str = "directive") -> None:
    """Caddy's message for a directive (or subdirective) kept under its old name."""
    warn(ADAPTER_LOGGER, f"the '{old}' {kind} is deprecated, please use '{new}' instead!")
