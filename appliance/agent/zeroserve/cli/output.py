"""Diagnostics on stderr in the shape Caddy's CLI uses (zap's JSON lines).

JSON goes to stdout and everything else to stderr, so `zeroserve adapt | jq` is safe.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def log_line(level: str, msg: str, **fields: Any) -> None:
    record: dict[str, Any] = {"level": level, "ts": time.time(), "msg": msg}
    record.update({k: v for k, v in fields.items() if v not in (None, "")})
    sys.stderr.write(json.dumps(record) + "\n")


def warn_adapt(warning: Any) -> None:
    """One adapter warning, with the fields Caddy's adapt command logs."""
    log_line(
        "warn",
        warning.message,
        adapter="caddyfile",
        file=getattr(warning, "file", None),
        line=getattr(warning, "line", None) or None,
    )
