"""Type stubs for the Rust extension module `zeroserve._engine`."""

from typing import TypedDict

class ProbeReport(TypedDict):
    setup: bool
    opcodes: dict[str, bool]
    error: str | None

class UpstreamStatus(TypedDict):
    address: str
    num_requests: int
    fails: int

class CacheStats(TypedDict):
    entries: int
    bytes: int
    max_bytes: int
    deploy_id: str

class EngineError(Exception):
    """A config the engine cannot compile, a listener it cannot bind, or a failed worker."""

class Engine:
    def __init__(self, config_json: str, workers: int | None = None) -> None:
        """Parse and compile Caddy JSON; raises EngineError with Caddy-like text."""
    def start(self) -> None:
        """Bind one SO_REUSEPORT listener per address per worker and start the workers."""
    def reload(self, config_json: str) -> None:
        """Compile aside and swap into every worker; on error the old config keeps serving."""
    def stop(self, grace_seconds: float = 0.0) -> None:
        """Stop accepting, let in-flight exchanges finish within the grace, join workers."""
    def wait(self, timeout: float | None = None) -> bool:
        """Block until no worker runs (True) or the timeout passes (False)."""
    def listen_addresses(self) -> list[str]:
        """The bound `host:port` of every listener."""
    def listener_fds(self) -> list[int]:
        """Every worker's listening socket (SO_REUSEPORT); engine-owned, valid while started."""
    def metrics(self) -> str:
        """Caddy's `caddy_http_*` metrics (with `apps.http.metrics`) summed over the workers,
        plus `zeroserve_access_log_dropped_total`, in Prometheus text format."""
    def upstreams(self) -> list[UpstreamStatus]:
        """Every reverse_proxy upstream address in use (process-wide, by address), with its
        in-flight requests and recent passive-check fails: Caddy's /reverse_proxy/upstreams."""
    def configure_cache(
        self,
        deploy_id: str = "",
        experiment_header: str | None = None,
        experiment_cookie: str | None = None,
        max_bytes: int | None = None,
    ) -> None:
        """The process-wide response cache: the deployment and the experiment arm's header or
        cookie (both in every key), and the memory bound in bytes (default 256 MiB)."""
    def purge_cache(self, pattern: str | None = None) -> int:
        """Drop cached responses whose shown key matches the regexp (all without one)."""
    def cache_stats(self) -> CacheStats:
        """Entries, bytes, bound and deployment of the response cache."""

def probe() -> ProbeReport:
    """io_uring support on this kernel: ring setup, the opcodes the engine uses, any error."""
