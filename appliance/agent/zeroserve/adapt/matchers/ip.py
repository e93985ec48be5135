"""The IP request matchers `remote_ip` and `client_ip` (modules/caddyhttp/ip_matchers.go)."""

from __future__ import annotations

from zeroserve.adapt.registry import matcher
from zeroserve.adapt.values import PRIVATE_RANGES
from zeroserve.caddyfile.dispenser import Dispenser


def _ranges(d: Dispenser, kind: str) -> dict:
    ranges: list[str] = []
    while d.next():
        while d.next_arg():
            if kind == "remote_ip" and d.val() == "forwarded":
                raise d.err(
                    "the 'forwarded' option is no longer supported; "
                    "use the 'client_ip' matcher instead"
                )
            if d.val() == "private_ranges":
                ranges.extend(PRIVATE_RANGES)
                continue
            ranges.append(d.val())
        if d.next_block(0):
            raise d.err(f"malformed {kind} matcher: blocks are not supported")
    return {"ranges": ranges} if ranges else {}


@matcher("remote_ip")
def unmarshal_remote_ip(d: Dispenser, name: str) -> dict:
    """Syntax::

    remote_ip <ranges...|private_ranges>
    """
    return _ranges(d, "remote_ip")


@matcher("client_ip")
def unmarshal_client_ip(d: Dispenser, name: str) -> dict:
    """Syntax::

    client_ip <ranges...|private_ranges>
    """
    return _ranges(d, "client_ip")
