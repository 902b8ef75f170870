"""The counters and the shapes of /cache/stats and /cache/health, as the cache builds them.

The cache answers with the same :mod:`guard_proxy.api_models` the server validates and
the CLI reads: the field order is the documented JSON.
"""

from __future__ import annotations

from guard_proxy_testing.caches import CacheFactory

from guard_proxy.api_models import CacheHealthBody, CacheStatsBody
from guard_proxy.cache.counters import CacheCounters

STATS_FIELDS = [
    "enabled", "configured_backend", "active_backend", "hits", "memory_hits", "redis_hits",
    "misses", "hit_rate", "sets", "errors", "coalesced", "pool_timeouts", "failovers",
    "recoveries", "last_failover_at", "last_recovery_at", "breaker_state", "memory_entries",
    "memory_max_size", "memory_evictions", "redis",
]  # fmt: skip
HEALTH_FIELDS = [
    "healthy", "degraded", "enabled", "configured_backend", "active_backend",
    "redis_connected", "latency_ms", "redis_address", "breaker", "last_error",
]  # fmt: skip


def test_hit_rate() -> None:
    assert CacheCounters().hit_rate == 0.0
    assert CacheCounters(hits=2, misses=1).hit_rate == 0.6667
    assert CacheCounters(hits=0, misses=3).hit_rate == 0.0


async def test_counters_in_the_documented_order(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory", max_size=10)
    key = cache.key("input", "cfg", "a")
    assert await cache.get(key) is None
    await cache.set(key, {"allowed": True})
    assert await cache.get(key) == {"allowed": True}
    report = cache.counters()
    assert isinstance(report, CacheStatsBody)
    assert list(report.model_dump(exclude_unset=True)) == STATS_FIELDS
    assert (report.hits, report.memory_hits, report.hit_rate, report.memory_entries) == (
        1,
        1,
        0.5,
        1,
    )
    assert (report.breaker_state, report.memory_max_size, report.redis) == ("closed", 10, None)


async def test_a_disabled_cache_holds_no_entries(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory", enabled=False)
    report = await cache.stats()
    assert (report.active_backend, report.memory_entries) == ("none", 0)


async def test_health_in_the_documented_order(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    report = await cache.health()
    assert isinstance(report, CacheHealthBody)
    assert list(report.model_dump()) == HEALTH_FIELDS
    assert report.healthy is True and report.degraded is False
    assert (report.redis_connected, report.latency_ms, report.redis_address) == (
        False,
        None,
        None,
    )
    assert report.breaker.model_dump() == {
        "state": "closed",
        "consecutive_failures": 0,
        "threshold": 1,
    }
    await cache.aclose()
    assert (await cache.health()).healthy is False
