"""TLS to Redis: the settings reach redis-py, and a certificate problem means memory, not errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from guard_proxy_testing.caches import RELAXED, CacheFactory
from guard_proxy_testing.redis_server import RedisServer

VERDICT = {"allowed": True}


@pytest.fixture
def tls_server() -> Iterator[RedisServer]:
    server = RedisServer(tls=True).start()
    try:
        yield server
    finally:
        server.close()


async def compute() -> dict[str, Any]:
    return dict(VERDICT)


async def test_tls_with_ca(make_cache: CacheFactory, tls_server: RedisServer) -> None:
    cache = await make_cache(redis=tls_server.settings(**RELAXED))
    assert cache.active_backend == "redis"
    key = cache.key("input", "cfg", "x")
    assert (await cache.get_or_compute(key, compute))[1] == "miss"
    assert (await cache.get_or_compute(key, compute))[1] == "hit"
    with tls_server.client() as client:
        assert client.exists(key) == 1


async def test_tls_unknown_ca_is_refused(make_cache: CacheFactory, tls_server: RedisServer) -> None:
    cache = await make_cache(
        redis=tls_server.settings(tls_ca_file="", probe_interval=3600, **RELAXED)
    )
    assert cache.active_backend == "memory"
    assert "certificate" in (cache.last_error or "").lower()
    assert (await cache.get_or_compute(cache.key("input", "c", "x"), compute))[1] == "miss"


async def test_tls_without_verification(make_cache: CacheFactory, tls_server: RedisServer) -> None:
    cache = await make_cache(redis=tls_server.settings(tls_ca_file="", tls_verify=False, **RELAXED))
    assert cache.active_backend == "redis"


async def test_plain_client_against_tls_port(
    make_cache: CacheFactory, tls_server: RedisServer
) -> None:
    cache = await make_cache(redis=tls_server.settings(tls=False, probe_interval=3600, **RELAXED))
    assert cache.active_backend == "memory"
    assert (await cache.get_or_compute(cache.key("input", "c", "x"), compute))[1] == "miss"
