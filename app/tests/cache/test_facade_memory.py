"""GuardCache on memory alone: same behaviour as on Redis, plus disabled mode and single-flight."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from guard_proxy_testing.caches import CacheFactory

from guard_proxy.cache import GuardCache
from guard_proxy.cache.backends.memory import MemoryBackend
from guard_proxy.config import load_settings
from guard_proxy.config.settings import CacheSettings, RedisSettings

VERDICT = {"allowed": True, "scanners": [{"name": "regex", "score": 0.0}]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_memory_backend_hits_and_misses(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    assert cache.active_backend == "memory"
    key = cache.key("input", "cfg", "hello")
    assert await cache.get(key) is None
    await cache.set(key, VERDICT)
    assert await cache.get(key) == VERDICT
    assert await cache.exists(key)
    stats = await cache.stats()
    assert (stats.hits, stats.misses, stats.sets) == (1, 1, 1)
    assert stats.hit_rate == 0.5
    assert stats.memory_entries == 1
    assert stats.redis is None
    assert await cache.delete(key) is True
    assert await cache.get(key) is None


async def test_memory_ttl_expiry(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory", ttl=10)
    clock = FakeClock()
    cache.memory = MemoryBackend(cache.memory.max_size, clock=clock)
    key = cache.key("input", "cfg", "hello")
    await cache.set(key, VERDICT)
    await cache.set(cache.key("input", "cfg", "short"), VERDICT, ttl=2)
    clock.now += 5
    assert await cache.get(cache.key("input", "cfg", "short")) is None
    assert await cache.get(key) == VERDICT
    clock.now += 6
    assert await cache.get(key) is None


async def test_lru_eviction_through_facade(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory", max_size=5)
    keys = [cache.key("input", "cfg", f"text {i}") for i in range(6)]
    for key in keys[:5]:
        await cache.set(key, VERDICT)
    await cache.get(keys[0])  # touch the oldest
    await cache.set(keys[5], VERDICT)
    assert await cache.get(keys[1]) is None
    assert await cache.get(keys[0]) == VERDICT
    stats = await cache.stats()
    assert stats.memory_entries == 5
    assert stats.memory_evictions == 1


async def test_config_hash_change_misses(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"allowed": calls == 1}

    first = await cache.get_or_compute(cache.key("input", "cfg-v1", "same text"), compute)
    again = await cache.get_or_compute(cache.key("input", "cfg-v1", "same text"), compute)
    changed = await cache.get_or_compute(cache.key("input", "cfg-v2", "same text"), compute)
    assert first == ({"allowed": True}, "miss")
    assert again == ({"allowed": True}, "hit")
    assert changed == ({"allowed": False}, "miss")
    assert calls == 2


async def test_single_flight_computes_once(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    key = cache.key("input", "cfg", "popular prompt")
    calls = 0
    release = asyncio.Event()

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await release.wait()
        return dict(VERDICT)

    tasks = [asyncio.create_task(cache.get_or_compute(key, compute)) for _ in range(50)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert sorted(outcome for _, outcome in results) == ["hit"] * 49 + ["miss"]
    assert all(value == VERDICT for value, _ in results)
    # Waiters get their own copies: mutating one result does not touch another.
    results[0][0]["allowed"] = False
    assert results[1][0]["allowed"] is True
    assert (await cache.stats()).coalesced == 49


async def test_compute_errors_propagate_and_are_not_cached(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    key = cache.key("input", "cfg", "text")

    async def broken() -> dict[str, Any]:
        raise RuntimeError("scanner blew up")

    with pytest.raises(RuntimeError, match="scanner blew up"):
        await cache.get_or_compute(key, broken)
    assert await cache.get(key) is None


async def test_cached_values_cannot_be_mutated_by_callers(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    key = cache.key("input", "cfg", "text")
    value = {"allowed": True}
    await cache.set(key, value)
    value["allowed"] = False
    got = await cache.get(key)
    assert got == {"allowed": True}
    assert got is not None
    got["allowed"] = False
    assert await cache.get(key) == {"allowed": True}


async def test_unserialisable_value_is_skipped_not_raised(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    key = cache.key("input", "cfg", "text")
    await cache.set(key, {"bad": object()})
    assert await cache.get(key) is None


async def test_disabled_cache(make_cache: CacheFactory) -> None:
    cache = await make_cache(enabled=False)
    assert cache.active_backend == "none"
    key = cache.key("input", "cfg", "text")
    await cache.set(key, VERDICT)
    assert await cache.get(key) is None
    assert not await cache.exists(key)
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return dict(VERDICT)

    assert await cache.get_or_compute(key, compute) == (VERDICT, "disabled")
    assert await cache.get_or_compute(key, compute) == (VERDICT, "disabled")
    assert calls == 2
    assert await cache.clear() == 0
    health = await cache.health()
    assert health.enabled is False
    assert health.active_backend == "none"
    assert (await cache.stats()).active_backend == "none"


async def test_redis_disabled_means_memory_even_under_auto(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="auto", redis=RedisSettings(enabled=False))
    assert cache.active_backend == "memory"
    assert cache.redis is None
    health = await cache.health()
    assert health.healthy is True
    assert health.degraded is False
    assert health.redis_connected is False
    assert health.redis_address is None


async def test_background_sweep_runs(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory", sweep_interval=0.01)
    clock = FakeClock()
    cache.memory = MemoryBackend(100, clock=clock)
    await cache.set(cache.key("input", "cfg", "a"), VERDICT, ttl=1)
    clock.now += 5
    for _ in range(500):
        if len(cache.memory) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(cache.memory) == 0  # removed by the sweeper, not by a read


async def test_from_settings_and_defaults() -> None:
    settings = load_settings(environ={}, path=None)
    cache = GuardCache.from_settings(settings)
    assert cache.configured_backend == "auto"
    assert cache.prefix == "guard:"
    assert cache.ttl == 3600
    assert cache.memory.max_size == 1000
    assert cache.key("input", "c", "t").startswith("guard:input:")
    await cache.aclose()


def test_cache_settings_defaults() -> None:
    settings = CacheSettings()
    assert (settings.enabled, settings.backend, settings.ttl, settings.max_size) == (
        True,
        "auto",
        3600,
        1000,
    )
