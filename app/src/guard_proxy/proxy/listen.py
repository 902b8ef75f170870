"""The listening socket: inherited from systemd (socket activation) or bound by us.

systemd's ``guard-proxy.socket`` owns the socket and passes it to the service as fd 3
(``SD_LISTEN_FDS_START``) with ``$LISTEN_FDS=1`` and ``$LISTEN_PID`` set to the service's
pid (sd_listen_fds(3)). While the service restarts the kernel keeps queueing connections in
the socket's backlog, so a restart delays requests instead of refusing them. Without those
variables (stand-alone, tests, containers) :func:`listening_socket` binds ``host:port``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

__all__ = ["BACKLOG", "SD_LISTEN_FDS_START", "inherited_socket", "listening_socket"]

SD_LISTEN_FDS_START = 3
BACKLOG = 2048
"""``listen()`` backlog when we bind ourselves (systemd's default for ``Backlog=`` is 4096)."""

_ENV = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def inherited_socket(environ: MutableMapping[str, str] | None = None) -> socket.socket | None:
    """The socket systemd passed (fd 3), or None when none was passed to this process.

    The ``LISTEN_*`` variables are removed from ``environ`` (default ``os.environ``) once
    read, so that a child process never takes them for its own. More than one passed socket
    is an error (the socket unit has one ``ListenStream=``).
    """
    env = os.environ if environ is None else environ
    fds, pid = env.get("LISTEN_FDS", ""), env.get("LISTEN_PID", "")
    for name in _ENV:
        env.pop(name, None)
    if not fds or pid != str(os.getpid()):
        return None
    count = int(fds)
    if count != 1:
        raise ValueError(f"expected one socket from systemd, got LISTEN_FDS={count}")
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)  # family and type read from the fd
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ValueError("the socket passed by systemd is not a stream socket")
    sock.set_inheritable(False)
    return sock


def listening_socket(
    host: str, port: int, environ: MutableMapping[str, str] | None = None
) -> tuple[socket.socket, str]:
    """``(socket, source)``: systemd's socket (``"systemd"``) or ``host:port`` bound here
    (``"bound"``). Raises ``OSError`` when binding fails (address in use, no permission)."""
    sock = inherited_socket(environ)
    if sock is not None:
        return sock, "systemd"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound = socket.create_server((host, port), family=family, backlog=BACKLOG)
    return bound, "bound"
