"""The shapes of ``/cache/stats`` and ``/cache/health``, built from the cache's parts.

Pure functions: they read the counters, the supervisor and the memory level and ask nothing
(the facade does the asking: a PING for health, INFO and SCAN for stats). Field names and
order are the documented JSON (docs/cache.md, the OpenAPI models in ``guard_proxy/api_models.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from guard_proxy.cache.backends.base import LocalBackend, RedisMemoryInfo
from guard_proxy.cache.breaker import BreakerSnapshot
from guard_proxy.cache.counters import CacheCounters

if TYPE_CHECKING:
    from guard_proxy.cache.supervisor import RedisSupervisor

__all__ = [
    "CacheHealth",
    "CacheStats",
    "RedisStats",
    "counters_report",
    "health_report",
    "redis_report",
]


class RedisStats(TypedDict):
    """``/cache/stats`` ``redis``: what Redis holds, asked while it serves."""

    used_memory: int | None
    maxmemory: int | None
    maxmemory_policy: str | None
    keys: int
    keys_complete: bool
    address: str


class CacheStats(TypedDict):
    """``/cache/stats`` of one process (``redis`` is None unless Redis was asked)."""

    enabled: bool
    configured_backend: str
    active_backend: str
    hits: int
    memory_hits: int
    redis_hits: int
    misses: int
    hit_rate: float
    sets: int
    errors: int
    coalesced: int
    pool_timeouts: int
    failovers: int
    recoveries: int
    last_failover_at: float | None
    last_recovery_at: float | None
    breaker_state: str
    memory_entries: int
    memory_max_size: int
    memory_evictions: int
    redis: RedisStats | None


class CacheHealth(TypedDict):
    """``/cache/health``."""

    healthy: bool
    degraded: bool
    enabled: bool
    configured_backend: str
    active_backend: str
    redis_connected: bool
    latency_ms: float | None
    redis_address: str | None
    breaker: BreakerSnapshot
    last_error: str | None


def counters_report(
    *,
    enabled: bool,
    configured_backend: str,
    active_backend: str,
    counters: CacheCounters,
    supervisor: RedisSupervisor,
    memory: LocalBackend,
) -> CacheStats:
    """:meth:`GuardCache.counters`: this process's numbers, nothing asked of Redis."""
    c = counters
    return {
        "enabled": enabled,
        "configured_backend": configured_backend,
        "active_backend": active_backend,
        "hits": c.hits,
        "memory_hits": c.memory_hits,
        "redis_hits": c.redis_hits,
        "misses": c.misses,
        "hit_rate": c.hit_rate,
        "sets": c.sets,
        "errors": c.errors,
        "coalesced": c.coalesced,
        "pool_timeouts": c.pool_timeouts,
        "failovers": c.failovers,
        "recoveries": c.recoveries,
        "last_failover_at": c.last_failover_at,
        "last_recovery_at": c.last_recovery_at,
        "breaker_state": supervisor.breaker.state,
        "memory_entries": len(memory) if enabled else 0,
        "memory_max_size": memory.max_size,
        "memory_evictions": memory.evictions,
        "redis": None,
    }


def redis_report(info: RedisMemoryInfo, keys: int, complete: bool, address: str) -> RedisStats:
    """``/cache/stats`` ``redis`` from INFO memory and a bounded key count."""
    return {
        "used_memory": info["used_memory"],
        "maxmemory": info["maxmemory"],
        "maxmemory_policy": info["maxmemory_policy"],
        "keys": keys,
        "keys_complete": complete,
        "address": address,
    }


def health_report(
    *,
    closing: bool,
    wants_redis: bool,
    enabled: bool,
    configured_backend: str,
    active_backend: str,
    latency_ms: float | None,
    supervisor: RedisSupervisor,
) -> CacheHealth:
    """:meth:`GuardCache.health` from a PING's outcome (``latency_ms`` None: none answered)."""
    connected = latency_ms is not None
    return {
        "healthy": not closing,
        "degraded": wants_redis and not connected,
        "enabled": enabled,
        "configured_backend": configured_backend,
        "active_backend": active_backend,
        "redis_connected": connected,
        "latency_ms": latency_ms,
        "redis_address": supervisor.redis_address,
        "breaker": supervisor.breaker.snapshot(),
        "last_error": supervisor.last_error,
    }
