"""The counters and the shapes of /cache/stats and /cache/health, without a running cache."""

from __future__ import annotations

from guard_proxy.cache.backends.memory import MemoryBackend
from guard_proxy.cache.counters import CacheCounters
from guard_proxy.cache.reports import counters_report, health_report, redis_report
from guard_proxy.cache.supervisor import RedisSupervisor
from guard_proxy.config.settings import RedisSettings

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


async def test_counters_report_in_the_documented_order() -> None:
    counters = CacheCounters(hits=3, memory_hits=2, coalesced=1, misses=1, sets=1)
    memory = MemoryBackend(10)
    await memory.set("guard:a", b"{}", 60)
    supervisor = RedisSupervisor(RedisSettings(), counters, wanted=False)
    report = counters_report(
        enabled=True,
        configured_backend="memory",
        active_backend="memory",
        counters=counters,
        supervisor=supervisor,
        memory=memory,
    )
    assert list(report) == STATS_FIELDS
    assert (report["hits"], report["hit_rate"], report["memory_entries"]) == (3, 0.75, 1)
    assert (report["breaker_state"], report["memory_max_size"], report["redis"]) == (
        "closed",
        10,
        None,
    )
    disabled = counters_report(
        enabled=False,
        configured_backend="memory",
        active_backend="none",
        counters=counters,
        supervisor=supervisor,
        memory=memory,
    )
    assert disabled["memory_entries"] == 0


def test_redis_report() -> None:
    info = {"used_memory": 1024, "maxmemory": 0, "maxmemory_policy": "allkeys-lru"}
    assert redis_report(info, 7, False, "r:6379/0") == {  # type: ignore[arg-type]
        "used_memory": 1024,
        "maxmemory": 0,
        "maxmemory_policy": "allkeys-lru",
        "keys": 7,
        "keys_complete": False,
        "address": "r:6379/0",
    }


def test_health_report() -> None:
    supervisor = RedisSupervisor(RedisSettings(port=6390), CacheCounters(), wanted=True)
    report = health_report(
        closing=False,
        wants_redis=True,
        enabled=True,
        configured_backend="auto",
        active_backend="memory",
        latency_ms=None,
        supervisor=supervisor,
    )
    assert list(report) == HEALTH_FIELDS
    assert report["healthy"] is True and report["degraded"] is True
    assert report["redis_connected"] is False
    assert report["redis_address"] == "localhost:6390/0"
    assert report["breaker"] == {"state": "closed", "consecutive_failures": 0, "threshold": 1}
    up = health_report(
        closing=True,
        wants_redis=True,
        enabled=True,
        configured_backend="auto",
        active_backend="redis",
        latency_ms=0.25,
        supervisor=supervisor,
    )
    assert (up["healthy"], up["degraded"], up["redis_connected"]) == (False, False, True)
