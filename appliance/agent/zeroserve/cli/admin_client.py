"""Talking to a running instance's admin endpoint, as Caddy's CLI verbs do."""

from __future__ import annotations

from typing import Any

from zeroserve.cli.command import CommandError

# The HTTP client and the admin module (which pulls in http.server) are imported where
# they are used: cli.main imports every verb at start-up, and most verbs (adapt, fmt,
# validate, plan) never talk to an instance.


def resolve_address(flag: str | None, config: dict[str, Any] | None) -> str:
    """--address wins, then the config's own admin address, then Caddy's default."""
    from zeroserve.agent.admin import DEFAULT_ADDRESS, admin_address

    if flag:
        return flag
    if config is not None:
        address = admin_address(config)
        if address is None:
            raise CommandError("the config disables the admin endpoint (admin off); use --address")
        return address
    return DEFAULT_ADDRESS


def request(
    address: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    """One admin request; connection failures become a CommandError naming the address."""
    import http.client

    from zeroserve.agent.admin import split_address

    host, port = split_address(address)
    conn = http.client.HTTPConnection(host or "localhost", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError as exc:
        raise CommandError(f"performing request to {address}: {exc}") from None
    finally:
        conn.close()


def expect_ok(status: int, body: bytes, what: str) -> None:
    if status >= 400:
        text = body.decode(errors="replace").strip()
        raise CommandError(f"{what}: zeroserve responded with error: HTTP {status}: {text}")
