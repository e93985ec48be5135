"""Run a config in the foreground: the engine, the edge layers, the admin endpoint,
and config swaps.

Every change — from `POST /load`, `zeroserve reload` or a signal — goes through
`Agent.apply`, under one lock (Caddy's `rawCfgMu`): adapt, plan, compile the engine
config and the edge programs aside, swap the engine, commit the edge. A rejected
config raises and leaves the old one serving, programs included.
"""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

from zeroserve.agent.admin import AdminError, AdminServer, admin_address
from zeroserve.agent.durations import seconds
from zeroserve.agent.layers import EdgeError, EdgeLayers, engine_config, metrics
from zeroserve.caddyjson.encode import encode
from zeroserve.engine import Engine, EngineError
from zeroserve.plan import LineIndex, Plan
from zeroserve.plan.appliance import CacheSettings


def grace_period(config: dict[str, Any]) -> float:
    """Caddy's `grace_period` option: how long in-flight requests may take on stop."""
    return seconds(config.get("apps", {}).get("http", {}).get("grace_period"))


class Agent:
    """Holds the serving config and the parts that serve it."""

    def __init__(
        self,
        config: dict[str, Any],
        workers: int | None = None,
        edge: EdgeLayers | None = None,
        lines: LineIndex | None = None,
        deploy_id: str = "",
        cache: CacheSettings | None = None,
    ) -> None:
        """edge (opened; the agent closes it) runs the edge layers, None serves without;
        lines maps rules to Caddyfile lines; deploy_id and cache version and bound the
        response cache."""
        self.config = config
        self.edge = edge
        self.lines = lines
        self._plan = edge.plan(config, lines) if edge is not None else None
        self._engine_json = self._engine_json_for(config, self._plan)
        self.engine = Engine(self._engine_json, workers)
        cache = cache or CacheSettings()
        self.engine.configure_cache(
            deploy_id, cache.experiment_header, cache.experiment_cookie, cache.max_bytes
        )
        views = {
            "/zeroserve/status": lambda: ("application/json", self.status()),
            "/metrics": lambda: ("text/plain; version=0.0.4; charset=utf-8", self.metrics()),
            "/reverse_proxy/upstreams": lambda: ("application/json", self.upstreams()),
            "/zeroserve/cache": lambda: ("application/json", self.cache_stats()),
        }
        deletes = {"/zeroserve/cache": lambda query: ("application/json", self.purge(query))}
        self.admin = AdminServer(
            lambda: self.config, self._load_from_admin, self._request_stop, views, deletes
        )
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> EdgeError | None:
        """Compile the edge aside, open the admin endpoint (first, as Caddy does, so it
        answers as soon as the sites do), bind the sites, commit the edge.

        A kernel that refuses the edge (its programs, maps or hooks) closes it, and the
        engine runs every rule itself, as where BPF cannot run at all: that refusal is
        returned. Any other failure, the engine's refusal of the whole config included,
        stops what was started and raises."""
        refused = staged = None
        with self._lock:
            try:
                if self.edge is not None and self._plan is not None:
                    try:
                        staged = self.edge.stage(self._plan)
                    except EdgeError as exc:
                        refused = exc
                        self._serve_without_edge()
                self.admin.move_to(admin_address(self.config))
                self.engine.start()
                if staged is not None:
                    # A refused commit has put back what it had changed (staged included).
                    to_commit, staged = staged, None
                    try:
                        self.edge.commit(to_commit, self.engine.listener_fds())
                    except EdgeError as exc:
                        refused = exc
                        self._serve_without_edge()
            except BaseException:
                if staged is not None:
                    staged.discard()
                self.stop()
                raise
        return refused

    def _serve_without_edge(self) -> None:
        """Close the edge layers and hand the engine the rules only they were to run
        (an engine without a module for one refuses the config: EngineError)."""
        if self.edge is not None:
            self.edge.close()
        self.edge = self._plan = None
        engine_json = self._engine_json_for(self.config, None)
        if engine_json != self._engine_json:
            self.engine.reload(engine_json)
            self._engine_json = engine_json

    def apply(
        self, config: dict[str, Any], force: bool = False, lines: LineIndex | None = None
    ) -> None:
        """Swap to a new config; raises EngineError/EdgeError/OSError and keeps the old
        one serving."""
        with self._lock:
            if config == self.config and not force:
                return
            staged = plan = None
            if self.edge is not None:
                plan = self.edge.plan(config, lines)
                staged = self.edge.stage(plan)
            engine_json = self._engine_json_for(config, plan)
            try:
                self.engine.reload(engine_json)
            except BaseException:
                if staged is not None:
                    staged.discard()
                raise
            if staged is not None:
                try:
                    self.edge.commit(staged, self.engine.listener_fds())
                except EdgeError:
                    self.engine.reload(self._engine_json)
                    raise
            self.config, self.lines, self._engine_json = config, lines, engine_json
            self.admin.move_to(admin_address(config))

    @staticmethod
    def _engine_json_for(config: dict[str, Any], plan: Plan | None) -> str:
        """The engine's share of a config: with edge layers, less what only they run."""
        engine = engine_config(config, plan) if plan is not None else config
        return encode(engine, pretty=False).decode()

    def status(self) -> bytes:
        edge = self.edge.status() if self.edge is not None else {"enabled": False}
        body = {"listen": self.engine.listen_addresses(), "edge": edge}
        return encode(body, pretty=True) + b"\n"

    def metrics(self) -> bytes:
        """The engine's `caddy_http_*` families, then the edge layers' `zeroserve_*` ones."""
        layers = metrics(self.edge.status() if self.edge is not None else None)
        return (self.engine.metrics() + layers).encode()

    def upstreams(self) -> bytes:
        """Caddy's `GET /reverse_proxy/upstreams` body (json.Encoder: compact, newline)."""
        return encode(self.engine.upstreams(), pretty=False) + b"\n"

    def cache_stats(self) -> bytes:
        """The response cache's entries, bytes, bound and deployment."""
        return encode(dict(self.engine.cache_stats()), pretty=False) + b"\n"

    def purge(self, query: str) -> bytes:
        """`DELETE /zeroserve/cache[?key=<regexp>]`: drops the entries whose key (as
        `Cache-Status` shows it) matches, or all; answers how many went."""
        pattern = parse_qs(query).get("key", [None])[0]
        try:
            purged = self.engine.purge_cache(pattern)
        except EngineError as err:
            raise AdminError(400, str(err)) from None
        return encode({"purged": purged}, pretty=False) + b"\n"

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
            lines = None
        else:
            try:
                result = adapt_config(body, "Caddyfile", adapter)
            except CaddyfileError as exc:
                raise AdminError(400, f"adapting config using {adapter} adapter: {exc}") from None
            config = result.config
            lines = LineIndex("Caddyfile", body)
            warnings = [
                {"file": w.file, "line": w.line, "message": w.message} for w in result.warnings
            ]
        try:
            self.apply(config, force, lines)
        except (EngineError, EdgeError, OSError) as exc:
            raise AdminError(400, f"loading config: {exc}") from None
        return warnings

    def _request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self.admin.close()
        try:
            self.engine.stop(grace_period(self.config))
        finally:
            if self.edge is not None:
                self.edge.close()

    def stop_on_signals(self) -> None:
        """SIGINT and SIGTERM stop the agent as `POST /stop` does, during `start` too."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._stopping.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)

    def serve_forever(self) -> None:
        """Block until a stop is asked for (`POST /stop`, or a signal after
        `stop_on_signals`), then drain and stop."""
        while not self._stopping.is_set() and not self.engine.wait(0.2):
            pass
        self.stop()
