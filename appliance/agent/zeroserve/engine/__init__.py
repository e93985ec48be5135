"""Python face of the Rust HTTP engine (`zeroserve._engine`).

The engine compiles Caddy JSON into a route program and serves it from io_uring worker
threads; Python only starts, reconfigures and stops it. Every call is a short message to the
control plane; `start`, `reload`, `stop` and `wait` release the GIL while they block.
"""

from zeroserve._engine import Engine, EngineError, probe

__all__ = ["Engine", "EngineError", "probe"]
