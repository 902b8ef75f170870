"""systemd socket activation for tests: a listening socket the test owns, passed as fd 3.

The test plays systemd's ``guard-proxy.socket``: it binds and listens, and every proxy it
starts gets that socket as fd 3 with ``LISTEN_FDS=1`` and ``LISTEN_PID`` set to the proxy's
own pid. A tiny exec wrapper does what systemd does between fork and exec (move the fd to 3,
set ``LISTEN_PID`` to its pid, exec the proxy, which keeps that pid).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .processes import Process, Proxy

__all__ = ["listening_socket", "spawn_activated_proxy"]

_WRAPPER = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def listening_socket() -> socket.socket:
    """A TCP socket listening on 127.0.0.1 on a free port (the test's ``ListenStream=``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


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
    port = sock.getsockname()[1]
    argv = [sys.executable, "-c", _WRAPPER, str(sock.fileno())]
    argv += [sys.executable, "-m", "guard_proxy", "serve", *args]
    process = Process("guard-proxy serve (socket-activated)", argv, env, log, sock.fileno())
    proxy = Proxy(dict(env), port, process, ca_file)
    if wait:
        try:
            process.wait_ready(f"{proxy.url}/health", context=proxy.ssl_context())
        except BaseException:
            proxy.stop()
            raise
    return proxy
