"""Sentinel: the cache finds the primary through Sentinel and follows a promotion live."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from guard_proxy_testing.caches import RELAXED, CacheFactory
from guard_proxy_testing.redis_server import RedisServer, SentinelServer, replica_of

from .helpers import Traffic, eventually

VERDICT = {"allowed": True, "scanners": []}


def wait_replicating(replica: RedisServer, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with replica.client() as client:
            if client.info("replication").get("master_link_status") == "up":
                return
        time.sleep(0.05)
    raise AssertionError("replica never synced")


@pytest.fixture
def sentinel_setup() -> Iterator[tuple[RedisServer, RedisServer, SentinelServer]]:
    primary = RedisServer().start()
    replica = replica_of(primary).start()
    sentinel = SentinelServer(primary)
    try:
        wait_replicating(replica)
        sentinel.start()
        yield primary, replica, sentinel
    finally:
        for server in (sentinel, replica, primary):
            server.close()


async def compute() -> dict[str, Any]:
    return dict(VERDICT)


async def test_sentinel_finds_primary_and_follows_promotion(
    make_cache: CacheFactory, sentinel_setup: tuple[RedisServer, RedisServer, SentinelServer]
) -> None:
    primary, replica, sentinel = sentinel_setup
    cache = await make_cache(redis=sentinel.settings(probe_interval=0.05, **RELAXED))
    assert cache.active_backend == "redis"
    assert (await cache.health()).redis_address.startswith(primary.address)
    assert cache.redis_endpoint == f"{primary.address} (primary of mymaster)"

    key = cache.key("input", "cfg", "written before the failover")
    assert (await cache.get_or_compute(key, compute))[1] == "miss"
    with primary.client() as client:
        assert client.wait(1, 5000) == 1  # replicated before the primary dies

    traffic = Traffic(cache).start()
    await traffic.served(20)
    primary.kill()
    await eventually(lambda: cache.active_backend == "memory")
    await eventually(lambda: sentinel.primary_address() == (replica.host, replica.port), within=30)
    await eventually(lambda: cache.active_backend == "redis", within=30)
    await traffic.served(20)
    await traffic.stop()

    assert traffic.failures == []
    health = await cache.health()
    assert health.redis_connected is True
    assert health.redis_address.startswith(replica.address)
    assert cache.redis_endpoint == f"{replica.address} (primary of mymaster)"  # STATUS= names it
    cache.memory._data.clear()  # prove the hit comes from the promoted replica
    assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")
    stats = await cache.stats()
    assert stats.failovers >= 1
    assert stats.recoveries >= 1
    with replica.client() as client:
        assert client.info("replication")["role"] == "master"
        assert client.exists(key) == 1


async def test_no_sentinel_reachable_means_memory(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    dead = SentinelServer(redis_server)  # never started
    cache = await make_cache(redis=dead.settings(probe_interval=3600, **RELAXED))
    assert cache.active_backend == "memory"
    assert cache.last_error == (
        "MasterNotFoundError: No master found for 'mymaster' (sentinels: ConnectionError)"
    )
    assert (await cache.health()).redis_address == f"mymaster/0 via sentinels {dead.address}"
    assert cache.redis_endpoint == "mymaster (no primary known)"
    key = cache.key("input", "cfg", "x")
    assert await cache.get_or_compute(key, compute) == (VERDICT, "miss")
    dead.close()


async def test_wrong_sentinel_password_means_memory(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    sentinel = SentinelServer(redis_server).start()
    try:
        cache = await make_cache(
            redis=sentinel.settings(
                sentinel_password="wrong-sentinel-pw", probe_interval=3600, **RELAXED
            )
        )
        assert cache.active_backend == "memory"
        assert "AuthenticationError" in (cache.last_error or "")
        assert "wrong-sentinel-pw" not in repr(await cache.health())
    finally:
        sentinel.close()
