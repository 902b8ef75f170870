"""Pytest fixtures around :class:`guard_proxy_testing.redis_server.RedisServer`.

Use them from a conftest::

    from guard_proxy_testing.fixtures import redis_server, redis_server_factory  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .redis_server import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, running redis-server with a random password; killed and removed afterwards."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Build more servers (``factory(start=False, password=None, ...)``); all closed afterwards."""
    servers: list[RedisServer] = []

    def factory(*, start: bool = True, **kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        servers.append(server)
        return server.start() if start else server

    try:
        yield factory
    finally:
        for server in servers:
            server.close()
