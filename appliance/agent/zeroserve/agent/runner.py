"""Run a config in the foreground: start the engine, reload on request, stop on signal."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from zeroserve.agent.durations import seconds
from zeroserve.caddyjson.encode import encode
from zeroserve.engine import Engine


def grace_period(config: dict[str, Any]) -> float:
    """Caddy's `grace_period` option: how long in-flight requests may take on stop."""
    return seconds(config.get("apps", {}).get("http", {}).get("grace_period"))


class Agent:
    """Holds the serving config; every change is compiled aside and swapped."""

    def __init__(self, config: dict[str, Any], workers: int | None = None) -> None:
        self.config = config
        self.engine = Engine(encode(config, pretty=False).decode(), workers)
        self._lock = threading.Lock()

    def start(self) -> None:
        self.engine.start()

    def load(self, config: dict[str, Any]) -> None:
        """Swap to a new config; raises (and keeps the old one serving) if it is rejected."""
        with self._lock:
            if config == self.config:
                return
            self.engine.reload(encode(config, pretty=False).decode())
            self.config = config

    def stop(self) -> None:
        self.engine.stop(grace_period(self.config))

    def serve_forever(self) -> None:
        """Block until SIGINT/SIGTERM, then drain and stop."""
        stopping = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        while not stopping.is_set() and not self.engine.wait(0.2):
            pass
        self.stop()
