"""Fixtures: the engine (imported, never built here) and the reference Caddy, each serving
the same Caddy JSON on its own loopback port."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine.wire import wait_listening
from tests.support import clean_env, free_port

engine_mod = pytest.importorskip(
    "zeroserve._engine", reason="zeroserve._engine is not built: run `maturin develop`"
)


def with_listen(config: dict, port: int) -> dict:
    """`config` with every server listening on 127.0.0.1:port and Caddy's extras off."""
    cfg = copy.deepcopy(config)
    cfg["admin"] = {"disabled": True}
    for srv in cfg["apps"]["http"]["servers"].values():
        srv["listen"] = [f"127.0.0.1:{port}"]
        srv.setdefault("automatic_https", {"disable": True})
    return cfg


def server_config(routes: list, **server: object) -> dict:
    """A one-server config with these routes."""
    return {"apps": {"http": {"servers": {"srv0": {"routes": routes, **server}}}}}


class Pair:
    """Starts engines and Caddys, and stops them all at the end."""

    def __init__(self, caddy_bin: Path | None, workdir: Path) -> None:
        self.caddy_bin = caddy_bin
        self.workdir = workdir
        self.engines: list = []
        self.procs: list[subprocess.Popen] = []

    def engine(self, config: dict, workers: int = 2) -> tuple:
        port = free_port()
        e = engine_mod.Engine(json.dumps(with_listen(config, port)), workers)
        e.start()
        self.engines.append(e)
        return e, port

    def caddy(self, config: dict) -> int:
        if self.caddy_bin is None:
            pytest.skip("caddy is not installed in the venv: run `make setup`")
        port = free_port()
        path = self.workdir / f"caddy-{port}.json"
        path.write_text(json.dumps(with_listen(config, port)))
        proc = subprocess.Popen(
            [str(self.caddy_bin), "run", "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_env(),
        )
        self.procs.append(proc)
        wait_listening(port)
        return port

    def ports(self, config: dict) -> tuple[int, int]:
        """Caddy's port and an engine's port, both serving `config`."""
        _, engine_port = self.engine(config)
        return self.caddy(config), engine_port

    def close(self) -> None:
        for e in self.engines:
            e.stop(0.0)
            assert e.wait(5.0), "engine workers did not exit"
        for p in self.procs:
            p.terminate()
            p.wait(10)


def _caddy_or_none() -> Path | None:
    from tests.conftest import VENV_BIN

    path = VENV_BIN / "caddy"
    return path if path.exists() else None


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Pair]:
    pair = Pair(_caddy_or_none(), tmp_path)
    yield pair
    pair.close()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    pair = Pair(_caddy_or_none(), tmp_path_factory.mktemp("servers"))
    yield pair
    pair.close()


StartFn = Callable[[dict], int]
