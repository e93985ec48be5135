"""Diagnostics on stderr in the shape Caddy's CLI uses (zap's JSON lines).

JSON goes to stdout and everything else to stderr, so `zeroserve adapt | jq` is safe.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def log_line(level: str, msg: str, logger: str = "", **fields: Any) -> None:
    """One zap JSON line; zap leaves out the logger key of an unnamed logger."""
    record: dict[str, Any] = {"level": level, "ts": time.time()}
    if logger:
        record["logger"] = logger
    record["msg"] = msg
    record.update({k: v for k, v in fields.items() if v not in (None, "")})
    sys.stderr.write(json.dumps(record, separators=(",", ":")) + "\n")


def log_adapt(record: Any) -> None:
    """A line the adapter logged as it went (an `adaptlog.LogRecord`)."""
    log_line(record.level, record.msg, record.logger, **record.fields)


def warn_adapt(warning: Any) -> None:
    """One adapter warning, as Caddy's CLI logs it: on a logger named after the adapter."""
    log_line(
        "warn",
        warning.message,
        "caddyfile",
        file=getattr(warning, "file", None),
        line=getattr(warning, "line", None) or None,
    )
