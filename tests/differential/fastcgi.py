"""The FastCGI responder that php_fastcgi cases reach as `{FASTCGI}`: one php-fpm pool for the
whole run, started when a case first names it and stopped (by PID) when the process exits."""

from __future__ import annotations

import atexit
import tempfile
import threading
from pathlib import Path

from tests import php_fpm
from tests.support import free_port

_lock = threading.Lock()
_address: str | None = None


def address() -> str:
    """host:port of the running pool."""
    global _address
    with _lock:
        if _address is None:
            workdir = Path(tempfile.mkdtemp(prefix="differential-fpm-"))
            port = free_port()
            proc = php_fpm.start(workdir, port)
            atexit.register(php_fpm.stop, proc)
            _address = f"127.0.0.1:{port}"
        return _address
