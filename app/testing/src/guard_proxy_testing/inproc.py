"""guard-proxy's app in the test process: built from settings as ``serve`` builds it, served
by uvicorn in a thread (:class:`~guard_proxy_testing.servers.ThreadServer`) on a socket bound
first. For tests of what the app answers, where a process of its own adds only start-up time;
start-up, signals, sockets, workers, systemd and TLS stay with
:func:`guard_proxy_testing.processes.spawn_proxy`.

:class:`InProcessProxy` has the surface the tests use of a process
(:class:`~guard_proxy_testing.processes.Proxy`): ``url``, ``port``, ``env`` (for CLI commands),
``client()``, ``logs()`` / ``log_records()`` (the JSON lines its thread logged) and ``stop()``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from .servers import ThreadServer

__all__ = ["InProcessProxy", "start_inprocess_proxy"]


class _ThreadLog(logging.Handler):
    """The records one thread logs, formatted as the service writes them (JSON lines)."""

    def __init__(self, thread: threading.Thread) -> None:
        from guard_proxy.proxy.jsonlog import JsonFormatter

        super().__init__()
        self.thread = thread
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def filter(self, record: logging.LogRecord) -> bool:
        return threading.current_thread() is self.thread

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class InProcessProxy:
    """A proxy app served in a thread of this process (see the module docstring)."""

    ca_file: Path | None = None

    def __init__(self, env: dict[str, str], server: ThreadServer, log: _ThreadLog) -> None:
        self.server = server
        self.port = server.port
        self.url = f"http://127.0.0.1:{server.port}"
        self.env = {**env, "PROXY_HOST": "127.0.0.1", "PROXY_PORT": str(server.port)}
        self._log = log

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def logs(self) -> str:
        return "".join(line + "\n" for line in list(self._log.lines))

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self._log.lines)]

    def stop(self) -> None:
        """Stop as SIGTERM would: stop accepting, finish what runs, run the lifespan's end."""
        try:
            self.server.stop()
        finally:
            logging.getLogger().removeHandler(self._log)


def start_inprocess_proxy(config: Path | None, env: Mapping[str, str]) -> InProcessProxy:
    """Load settings from ``config`` (YAML) and ``env`` (the environment the service would
    have), build guard, cache and app as ``guard-proxy serve`` does, and serve them here.

    A configuration error raises ``guard_proxy.exceptions.ConfigError``."""
    from guard_proxy.cache import GuardCache
    from guard_proxy.config import load_settings
    from guard_proxy.guard import Guard
    from guard_proxy.proxy import create_app

    full = dict(env)
    settings = load_settings(str(config) if config else None, full)
    app = create_app(
        settings, Guard.from_settings(settings.guard), GuardCache.from_settings(settings)
    )
    server = ThreadServer(
        app,
        lifespan="on",
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=int(settings.server.drain_timeout + 1),
    )
    log = _ThreadLog(server.thread)
    logging.getLogger().addHandler(log)  # every logger's records from the server's thread
    logger = logging.getLogger("guard_proxy")
    level = logging.getLevelName(settings.server.log_level.upper())
    if isinstance(level, int) and (logger.level == logging.NOTSET or level < logger.level):
        logger.setLevel(level)  # the service's level (the lowest any running proxy asks)
    try:
        server.start()
    except BaseException:
        logging.getLogger().removeHandler(log)
        raise
    return InProcessProxy(full, server, log)
