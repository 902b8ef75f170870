"""systemd socket activation for tests: a listening socket the test owns, passed as fd 3.

The test plays systemd's ``guard-proxy.socket``: it binds and listens
(:func:`listening_socket`), and every proxy it starts gets that socket as fd 3 with
``LISTEN_FDS=1`` and ``LISTEN_PID`` set to the proxy's own pid
(:func:`guard_proxy_testing.processes.spawn_proxy` with ``sock=``, which every proxy the
tests start goes through).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from .processes import Proxy, spawn_proxy
from .servers import listening_socket

__all__ = ["listening_socket", "spawn_activated_proxy"]


def spawn_activated_proxy(
    sock: socket.socket,
    log: Path,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    wait: bool = True,
    ca_file: Path | None = None,
) -> Proxy:
    """Run ``guard-proxy serve *args`` on ``sock`` (fd 3); with ``wait``, until ``/health``.

    ``ca_file``: the instance serves HTTPS with a certificate from that CA (see ``Proxy``)."""
    return spawn_proxy(log, env, args, ca_file, sock=sock, wait=wait)
