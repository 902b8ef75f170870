"""Two levels: memory (L1) is read first, Redis (L2) on a memory miss, and fills memory."""

from __future__ import annotations

import asyncio
from typing import Any

from guard_proxy_testing.caches import RELAXED, CacheFactory
from guard_proxy_testing.redis_server import RedisServer

VERDICT = {"allowed": False, "findings": [["ban_substrings", "banned term"]]}


async def compute() -> dict[str, Any]:
    return dict(VERDICT)


async def test_a_memory_hit_does_not_ask_redis(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(redis=redis_server.settings(probe_interval=3600, **RELAXED))
    key = cache.key("input", "cfg", "x")
    assert (await cache.get_or_compute(key, compute))[1] == "miss"
    redis_server.reset_stats()
    for _ in range(5):
        assert await cache.get_or_compute(key, compute) == (VERDICT, "hit")
    calls = redis_server.command_calls()
    assert calls.get("get") is None and calls.get("pttl") is None
    stats = await cache.stats()
    assert (stats.hits, stats.memory_hits, stats.redis_hits) == (5, 5, 0)
    assert stats.misses == 1


async def test_another_instance_finds_the_verdict_in_redis_then_in_memory(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    settings = redis_server.settings(probe_interval=3600, **RELAXED)
    first, second = await make_cache(redis=settings), await make_cache(redis=settings)
    key = first.key("input", "cfg", "shared")
    assert (await first.get_or_compute(key, compute))[1] == "miss"
    redis_server.reset_stats()
    assert await second.get_or_compute(key, compute) == (VERDICT, "hit")  # L1 miss, L2 hit
    assert redis_server.command_calls().get("get") == 1
    assert await second.get_or_compute(key, compute) == (VERDICT, "hit")  # now L1
    assert redis_server.command_calls().get("get") == 1
    stats = await second.stats()
    assert (stats.hits, stats.redis_hits, stats.memory_hits) == (2, 1, 1)
    assert (stats.misses, stats.sets) == (0, 0)  # filling memory is not a store


async def test_memory_copy_of_a_redis_hit_lives_no_longer_than_the_redis_key(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    settings = redis_server.settings(probe_interval=3600, **RELAXED)
    first, second = await make_cache(redis=settings), await make_cache(redis=settings)
    key = first.key("input", "cfg", "short lived")
    await first.set(key, VERDICT, ttl=1)  # second's own ttl is the default 3600 s
    assert await second.get(key) == VERDICT  # fills second's memory
    with redis_server.client() as client:
        for _ in range(400):
            if not client.exists(key):
                break
            await asyncio.sleep(0.01)
        assert not client.exists(key)
    await asyncio.sleep(0.05)
    assert await second.get(key) is None  # its memory copy expired with the Redis key
    assert (await second.stats()).memory_hits == 0


async def test_without_pttl_the_value_is_served_and_memory_not_filled(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    with redis_server.client() as client:
        client.acl_setuser(
            "nopttl",
            enabled=True,
            passwords=["+nopttl-secret-pw"],
            keys=["guard:*"],
            commands=["+get", "+set", "+unlink", "+exists", "+ping", "+scan"],  # no PTTL
        )
    settings = redis_server.settings(
        username="nopttl", password="nopttl-secret-pw", probe_interval=3600, **RELAXED
    )
    writer = await make_cache(redis=redis_server.settings(probe_interval=3600, **RELAXED))
    reader = await make_cache(redis=settings)
    key = writer.key("input", "cfg", "x")
    await writer.set(key, VERDICT)
    assert await reader.get(key) == VERDICT
    assert await reader.memory.get(key) is None  # no TTL known: not copied to memory
    stats = await reader.stats()
    assert (stats.redis_hits, stats.errors, stats.failovers) == (1, 0, 0)


async def test_clear_empties_both_levels(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    cache = await make_cache(redis=redis_server.settings(probe_interval=3600, **RELAXED))
    key = cache.key("input", "cfg", "x")
    await cache.set(key, VERDICT)
    assert await cache.clear() == 1
    assert await cache.memory.get(key) is None
    assert await cache.get_or_compute(key, compute) == (VERDICT, "miss")


async def test_coalesced_callers_count_as_hits_of_neither_level(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache(backend="memory")
    key = cache.key("input", "cfg", "same")

    async def slow() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return dict(VERDICT)

    await asyncio.gather(*(cache.get_or_compute(key, slow) for _ in range(4)))
    await cache.get_or_compute(key, slow)
    stats = await cache.stats()
    assert (stats.misses, stats.coalesced, stats.memory_hits) == (1, 3, 1)
    assert stats.hits == stats.memory_hits + stats.redis_hits + stats.coalesced == 4


async def test_exists_agrees_with_a_lookup(
    make_cache: CacheFactory, redis_server: RedisServer
) -> None:
    settings = redis_server.settings(probe_interval=3600, **RELAXED)
    first, second = await make_cache(redis=settings), await make_cache(redis=settings)
    in_redis = first.key("input", "cfg", "written by first")
    await first.set(in_redis, VERDICT)
    assert await second.exists(in_redis)  # memory miss, Redis holds it
    only_here = second.key("input", "cfg", "only in second's memory")
    await second.memory.set(only_here, b'{"allowed":true,"findings":[]}', 60)
    assert await second.exists(only_here)
    assert await second.get(only_here) == {"allowed": True, "findings": []}
    assert not await second.exists(second.key("input", "cfg", "nowhere"))
