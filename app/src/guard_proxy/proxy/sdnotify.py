"""``sd_notify``: tell systemd (``Type=notify``) that the service is ready or stopping.

A datagram to ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket). Without the
variable it does nothing; errors are swallowed (notification is best effort).
"""

from __future__ import annotations

import os
import socket


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``); returns whether a datagram was sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
