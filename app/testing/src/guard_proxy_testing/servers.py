"""An ASGI app served by uvicorn in a thread of the test process, on a socket bound first.

The socket is bound to port 0 and listening before the server starts, so its port is known,
never closed and never re-bound (no window for another process to take it). The server runs
its own event loop in a daemon thread; :meth:`ThreadServer.stop` ends it as SIGTERM would
(stop accepting, finish what runs) and joins the thread. No signal handlers are installed
(uvicorn installs them only in the main thread) and uvicorn leaves logging alone.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn

from . import fake_ollama

__all__ = ["FakeOllama", "ThreadServer", "listening_socket", "start_fake_ollama"]


def listening_socket(host: str = "127.0.0.1", backlog: int = 128) -> socket.socket:
    """A TCP socket listening on ``host`` on a port the kernel picks (the test's own)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock


class ThreadServer:
    """``app`` under uvicorn on ``sock`` (default: a new :func:`listening_socket`).

    ``config`` adds ``uvicorn.Config`` options (e.g. ``ssl_certfile``); the socket is closed by
    :meth:`stop`. :meth:`start` returns once the lifespan has started and the server accepts,
    or raises ``RuntimeError`` when it failed to.
    """

    def __init__(self, app: Any, sock: socket.socket | None = None, **config: Any) -> None:
        self.sock = sock if sock is not None else listening_socket()
        host, port = self.sock.getsockname()[:2]
        self.host, self.port = str(host), int(port)
        options: dict[str, Any] = {
            "lifespan": "auto",
            "log_config": None,
            "log_level": "warning",
            "access_log": False,
            "timeout_graceful_shutdown": 10,
        }
        options.update(config)
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, **options))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.name = f"uvicorn-{self.port}"

    def start(self, timeout: float = 30.0) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"the in-process server on port {self.port} did not start")
        return self

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), join the thread."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        self.sock.close()


class FakeOllama:
    """The fake upstream (:mod:`guard_proxy_testing.fake_ollama`) served in-process: its URL,
    and its request record read straight from the app object."""

    def __init__(self, app: fake_ollama.FakeOllama, server: ThreadServer) -> None:
        self.app = app
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}"

    def requests(self, marker: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests; with ``marker``, only those whose body mentions it."""
        data = list(self.app.state.requests)
        if marker is None:
            return data
        return [r for r in data if marker in repr(r.get("body"))]

    def stats(self) -> dict[str, int]:
        return dict(self.app.state.stats)

    def stop(self) -> None:
        self.server.stop()


def start_fake_ollama(env: Mapping[str, str] | None = None) -> FakeOllama:
    """A fake Ollama in a thread of this process (``FAKE_OLLAMA_*`` knobs in ``env``)."""
    app = fake_ollama.FakeOllama(dict(env or {}))
    return FakeOllama(app, ThreadServer(app, lifespan="off").start())
