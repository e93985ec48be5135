"""systemd's readiness protocol (sd_notify(3)): one datagram to $NOTIFY_SOCKET.

The appliance's unit is Type=notify, so systemd (and through it the health gates of a
rollout) counts the service as started only once the sites are bound and serving.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to the service manager.

    Returns False when not started by one (no NOTIFY_SOCKET) or when the socket is gone,
    which is what sd_notify's callers treat as "nothing to tell".
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        # Abstract namespace: the leading '@' stands for a NUL byte.
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
