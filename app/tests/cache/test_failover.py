"""Live failover to memory and recovery to Redis, against a real redis-server.

No timings are asserted: each test checks that every call returned a result (none raised),
that ``active_backend`` flipped, and that it flipped back without a restart of the cache.
pytest-timeout guards against a hang.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from guard_proxy_testing.caches import FREEZE, RELAXED, CacheFactory
from guard_proxy_testing.redis_server import RedisServer

from guard_proxy.config.settings import CacheSettings

from .helpers import Traffic, eventually

VERDICT = {"allowed": True}
FAST_PROBE = {"probe_interval": 0.05}

# Commands the cache sends; the assertion client only sends INFO/CONFIG/AUTH.
CACHE_COMMANDS = ("get", "set", "exists", "unlink", "del", "scan", "ping", "select")


def cache_commands(server: RedisServer) -> dict[str, int]:
    calls = server.command_calls()
    return {name: calls[name] for name in CACHE_COMMANDS if calls.get(name)}


async def compute() -> dict[str, Any]:
    return dict(VERDICT)


async def test_refused_at_start_falls_back_then_recovers(
    make_cache: CacheFactory,
    redis_server_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server: RedisServer = redis_server_factory(start=False)
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    cache = await make_cache(redis=server.settings(**FAST_PROBE, **RELAXED))
    assert cache.active_backend == "memory"
    key = cache.key("input", "cfg", "x")
    assert await cache.get_or_compute(key, compute) == (VERDICT, "miss")
    assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")  # memory serves
    health = await cache.health()
    assert health.healthy is True  # memory serves: requests succeed
    assert health.degraded is True
    assert health.redis_connected is False
    assert health.active_backend == "memory"
    assert "ConnectionError" in health.last_error
    stats = await cache.stats()
    assert stats.failovers == 1
    assert stats.redis is None
    unavailable = [r for r in caplog.records if "unavailable at start-up" in r.getMessage()]
    assert len(unavailable) == 1

    server.start()
    await eventually(lambda: cache.active_backend == "redis")
    assert (await cache.health()).redis_connected is True
    assert (await cache.stats()).recoveries == 1
    # The verdict computed during the outage stays valid (the key determines it) ...
    assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")
    # ... and new verdicts are stored in Redis again.
    fresh = cache.key("input", "cfg", "after recovery")
    assert (await cache.get_or_compute(fresh, compute))[1] == "miss"
    with server.client() as client:
        assert client.exists(fresh) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("fault", ["kill", "shutdown"])
async def test_redis_dies_mid_traffic(
    make_cache: CacheFactory,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    cache = await make_cache(redis=redis_server.settings(**FAST_PROBE, **FREEZE))
    traffic = Traffic(cache).start()
    await traffic.served(50)
    assert "redis" in traffic.backends

    getattr(redis_server, fault)()
    await eventually(lambda: cache.active_backend == "memory")
    await traffic.served(50)
    health = await cache.health()
    assert health.active_backend == "memory"
    assert health.redis_connected is False

    redis_server.start()  # same port, empty
    await eventually(lambda: cache.active_backend == "redis")
    await traffic.served(50)
    await traffic.stop()

    assert traffic.failures == []
    assert (await cache.health()).active_backend == "redis"
    stats = await cache.stats()
    assert stats.failovers >= 1
    assert stats.recoveries == stats.failovers
    assert stats.errors >= 1
    failover_lines = [r for r in caplog.records if "serving from memory" in r.getMessage()]
    assert len(failover_lines) == stats.failovers  # once per failover, not per request
    assert all(r.exc_info is None for r in caplog.records)


async def test_redis_frozen_mid_traffic(
    make_cache: CacheFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    cache = await make_cache(redis=redis_server.settings(**FAST_PROBE, **FREEZE))
    traffic = Traffic(cache).start()
    await traffic.served(50)

    redis_server.freeze()
    try:
        await eventually(lambda: cache.active_backend == "memory")
        await traffic.served(100)  # requests keep completing while Redis is frozen
        key = cache.key("input", "cfg", "fresh while frozen")
        assert await cache.get_or_compute(key, compute) == (VERDICT, "miss")
        assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")
        assert (await cache.health()).active_backend == "memory"
        assert "Timeout" in (cache.last_error or "")
    finally:
        redis_server.thaw()

    await eventually(lambda: cache.active_backend == "redis")
    await traffic.served(50)
    await traffic.stop()
    assert traffic.failures == []
    assert (await cache.health()).redis_connected is True
    assert (await cache.stats()).recoveries >= 1
    assert all(r.exc_info is None for r in caplog.records)


async def test_write_through_keeps_verdicts_across_a_failover(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(redis=redis_server.settings(probe_interval=3600, **RELAXED))
    key = cache.key("input", "cfg", "warm")
    assert (await cache.get_or_compute(key, compute))[1] == "miss"
    redis_server.kill()
    # The first call that reaches Redis after the kill fails over ...
    other = cache.key("input", "cfg", "cold")
    assert (await cache.get_or_compute(other, compute))[1] == "miss"
    assert cache.active_backend == "memory"
    # ... and the verdict is still there in memory.
    assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")


async def test_breaker_open_means_no_redis_traffic(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    # A long probe interval: the breaker stays open until the test probes by hand.
    cache = await make_cache(
        redis=redis_server.settings(
            probe_interval=3600, socket_connect_timeout=2.0, socket_timeout=0.3
        )
    )
    key = cache.key("input", "cfg", "x")
    await cache.set(key, VERDICT)

    redis_server.freeze()
    assert await cache.get(cache.key("input", "cfg", "cold")) is None  # times out on Redis
    assert await cache.get(key) == VERDICT  # served from memory
    redis_server.thaw()
    assert cache.breaker.is_open
    assert cache.active_backend == "memory"

    redis_server.reset_stats()
    for i in range(100):
        k = cache.key("input", "cfg", f"k{i}")
        await cache.get_or_compute(k, compute)
        await cache.set(k, VERDICT)
        await cache.exists(k)
        await cache.delete(k)
    await cache.stats()
    await cache.health()
    await cache.clear()
    assert cache_commands(redis_server) == {}

    assert await cache.probe() is True
    assert cache.active_backend == "redis"
    await cache.get(key)
    assert cache_commands(redis_server).get("get") == 1  # the counter does see our traffic


async def test_threshold_counts_consecutive_failures(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(
        redis=redis_server.settings(breaker_threshold=3, probe_interval=3600, **RELAXED)
    )
    key = cache.key("input", "cfg", "x")
    redis_server.kill()
    await cache.get(key)
    await cache.get(key)
    assert cache.active_backend == "redis"
    assert cache.breaker.consecutive_failures == 2
    await cache.get(key)
    assert cache.active_backend == "memory"
    assert (await cache.stats()).errors == 3


async def test_pool_wait_does_not_open_the_breaker(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(
        redis=redis_server.settings(
            max_connections=1, probe_interval=3600, socket_connect_timeout=2.0, socket_timeout=0.5
        )
    )
    assert cache.redis is not None
    key = cache.key("input", "cfg", "x")
    await cache.set(key, VERDICT)
    # Hold the only connection slot: every call waits for the pool, then gives up.
    async with cache.redis._slots:
        assert await cache.get(key) == VERDICT  # from memory, no pool wait
        cold = cache.key("input", "cfg", "cold")
        assert await cache.get(cold) is None  # the lookup waits: 1
        assert await cache.get_or_compute(cold, compute) == (VERDICT, "miss")  # lookup, store: 3
    assert cache.breaker.is_closed
    assert cache.active_backend == "redis"
    stats = await cache.stats()
    assert stats.pool_timeouts == 3
    assert stats.failovers == 0
    assert stats.errors == 0


async def test_many_concurrent_calls_on_a_small_pool(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(
        redis=redis_server.settings(max_connections=2, probe_interval=3600, **RELAXED)
    )

    async def one(i: int) -> str:
        return (await cache.get_or_compute(cache.key("input", "cfg", str(i % 50)), compute))[1]

    outcomes = await asyncio.gather(*(one(i) for i in range(300)))
    assert len(outcomes) == 300
    assert cache.breaker.is_closed
    stats = await cache.stats()
    assert stats.failovers == 0
    assert stats.errors == 0
    with redis_server.client() as client:
        assert client.info("clients")["connected_clients"] <= 3  # our 2 + this client


async def test_wrong_password(
    make_cache: CacheFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="guard_proxy.cache")
    wrong = "not-the-password-9f2c"
    cache = await make_cache(redis=redis_server.settings(password=wrong, **FAST_PROBE, **RELAXED))
    assert cache.active_backend == "memory"
    key = cache.key("input", "cfg", "x")
    assert await cache.get_or_compute(key, compute) == (VERDICT, "miss")
    assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")

    auth_lines = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(auth_lines) == 1
    assert auth_lines[0].levelno == logging.ERROR
    health = await cache.health()
    assert health.active_backend == "memory"
    assert "AuthenticationError" in health.last_error
    everything = caplog.text + repr(health) + repr(await cache.stats())
    assert wrong not in everything
    assert redis_server.password and redis_server.password not in everything

    # Keep probing: once Redis accepts our password, the cache switches over by itself.
    await asyncio.sleep(0.2)  # several failed probes: still exactly one log line
    assert len([r for r in caplog.records if "authentication failed" in r.getMessage()]) == 1
    with redis_server.client() as client:
        client.config_set("requirepass", wrong)
    await eventually(lambda: cache.active_backend == "redis")
    assert wrong not in caplog.text


async def test_no_password_against_a_password_server(
    make_cache: CacheFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    cache = await make_cache(
        redis=redis_server.settings(password="", probe_interval=3600, **RELAXED)
    )
    assert cache.active_backend == "memory"
    assert "authentication failed" in caplog.text


async def test_redis_backend_with_memory_fallback(
    make_cache: CacheFactory, redis_server_factory: Any
) -> None:
    server: RedisServer = redis_server_factory(start=False)
    cache = await make_cache(
        cache=CacheSettings(backend="redis"), redis=server.settings(**FAST_PROBE, **RELAXED)
    )
    assert cache.configured_backend == "redis"
    assert cache.active_backend == "memory"
    assert (await cache.health()).degraded is True
    server.start()
    await eventually(lambda: cache.active_backend == "redis")
    assert (await cache.health()).degraded is False


async def test_memory_backend_never_touches_redis(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(cache=CacheSettings(backend="memory"), redis=redis_server.settings())
    redis_server.reset_stats()
    with redis_server.client() as client:
        before = client.info("stats")["total_connections_received"]
    key = cache.key("input", "cfg", "x")
    await cache.get_or_compute(key, compute)
    await cache.stats()
    await cache.health()
    with redis_server.client() as client:
        after = client.info("stats")["total_connections_received"]
    assert after == before + 1  # only this assertion client connected
    assert cache.active_backend == "memory"
    assert cache.redis is None


async def test_aclose_stops_background_tasks(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(redis=redis_server.settings(**FAST_PROBE, **RELAXED))
    tasks = list(cache._tasks)
    assert len(tasks) == 2  # sweeper and prober
    await cache.aclose()
    assert all(t.done() for t in tasks)
    assert (await cache.health()).healthy is False
    assert cache.redis is None
    assert cache.active_backend == "memory"


async def test_rejected_commands_do_not_open_the_breaker(
    make_cache: CacheFactory,
    redis_server_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server: RedisServer = redis_server_factory(extra_config=["maxmemory-policy noeviction"])
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    cache = await make_cache(redis=server.settings(probe_interval=3600, **RELAXED))
    key = cache.key("input", "cfg", "x")
    await cache.set(key, VERDICT)
    with server.client() as client:
        for i in range(10):
            client.set(f"filler:{i}", "x" * 100_000)
        client.config_set("maxmemory", "100kb")  # now far over the limit: writes get OOM
    for i in range(5):
        await cache.set(cache.key("input", "cfg", f"new {i}"), VERDICT)  # OOM: rejected
    assert await cache.get(key) == VERDICT  # reads still served by Redis
    assert cache.active_backend == "redis"
    assert cache.breaker.is_closed
    stats = await cache.stats()
    assert stats.errors == 5
    assert stats.failovers == 0
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(rejected) == 1
    assert "OutOfMemoryError" in rejected[0].getMessage()


async def test_restart_between_calls_needs_no_failover(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    # Pooled connections to the old process are dead; the pool notices before using one.
    cache = await make_cache(redis=redis_server.settings(probe_interval=3600, **RELAXED))
    key = cache.key("input", "cfg", "x")
    await cache.set(key, VERDICT)
    redis_server.kill()
    redis_server.start()
    await asyncio.sleep(0.05)  # let the loop see the old sockets' EOF, as between requests
    assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")  # from memory
    cold = cache.key("input", "cfg", "cold")  # a memory miss: Redis over the pooled sockets
    assert (await cache.get_or_compute(cold, compute))[1] == "miss"  # the new Redis is empty
    assert cache.active_backend == "redis"
    assert (await cache.stats()).failovers == 0
