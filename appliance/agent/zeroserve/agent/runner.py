"""Run a config in the foreground: the engine, the admin endpoint, and config swaps.

Every change — from `POST /load`, `zeroserve reload` or a signal — goes through
`Agent.apply`, under one lock (Caddy's `rawCfgMu`): adapt, compile aside, swap. A
rejected config raises and leaves the old one serving.
"""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import Any

from zeroserve.agent.admin import AdminError, AdminServer, admin_address
from zeroserve.agent.durations import seconds
from zeroserve.caddyjson.encode import encode
from zeroserve.engine import Engine, EngineError


def grace_period(config: dict[str, Any]) -> float:
    """Caddy's `grace_period` option: how long in-flight requests may take on stop."""
    return seconds(config.get("apps", {}).get("http", {}).get("grace_period"))


class Agent:
    """Holds the serving config and the parts that serve it."""

    def __init__(self, config: dict[str, Any], workers: int | None = None) -> None:
        self.config = config
        self.engine = Engine(encode(config, pretty=False).decode(), workers)
        self.admin = AdminServer(lambda: self.config, self._load_from_admin, self._request_stop)
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> None:
        """Bind the sites, then the admin endpoint; a failure of either stops both."""
        self.engine.start()
        try:
            self.admin.move_to(admin_address(self.config))
        except OSError:
            self.engine.stop(0.0)
            raise

    def apply(self, config: dict[str, Any], force: bool = False) -> None:
        """Swap to a new config; raises EngineError/OSError and keeps the old one serving."""
        with self._lock:
            if config == self.config and not force:
                return
            self.engine.reload(encode(config, pretty=False).decode())
            self.config = config
            self.admin.move_to(admin_address(config))

    def _load_from_admin(self, body: bytes, adapter: str | None, force: bool) -> list[dict]:
        from zeroserve.adapt import adapt_config
        from zeroserve.caddyfile.errors import CaddyfileError

        if adapter not in (None, "json", "caddyfile"):
            raise AdminError(400, f"unrecognized config adapter '{adapter}'")
        if adapter in (None, "json"):
            try:
                config = json.loads(body)
            except ValueError as exc:
                raise AdminError(400, f"decoding request body: {exc}") from None
            warnings: list[dict] = []
        else:
            try:
                result = adapt_config(body, "Caddyfile", adapter)
            except CaddyfileError as exc:
                raise AdminError(400, f"adapting config using {adapter} adapter: {exc}") from None
            config = result.config
            warnings = [
                {"file": w.file, "line": w.line, "message": w.message} for w in result.warnings
            ]
        try:
            self.apply(config, force)
        except (EngineError, OSError) as exc:
            raise AdminError(400, f"loading config: {exc}") from None
        return warnings

    def _request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self.admin.close()
        self.engine.stop(grace_period(self.config))

    def serve_forever(self) -> None:
        """Block until SIGINT/SIGTERM or `POST /stop`, then drain and stop."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        while not self._stopping.is_set() and not self.engine.wait(0.2):
            pass
        self.stop()
