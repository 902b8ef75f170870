"""What the cache counts, in this process since it started.

One :class:`CacheCounters` per :class:`~guard_proxy.cache.GuardCache`: the lookup counts hits,
misses and stores; the supervisor counts Redis errors, pool timeouts, failovers and
recoveries. :meth:`GuardCache.stats` reports them (``/cache/stats``). Plain integers, no locks: one
event loop, no awaits between reading and writing a counter.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheCounters"]


@dataclass(slots=True)
class CacheCounters:
    """Counters of one cache. ``hits`` = ``memory_hits`` + ``redis_hits`` + ``coalesced``."""

    hits: int = 0
    memory_hits: int = 0
    redis_hits: int = 0
    misses: int = 0
    errors: int = 0
    """Failed or rejected Redis calls, and unexpected errors (pool timeouts not included)."""
    sets: int = 0
    coalesced: int = 0
    """Callers served by another caller's lookup or computation (single-flight)."""
    pool_timeouts: int = 0
    failovers: int = 0
    recoveries: int = 0
    last_failover_at: float | None = None
    """Unix time of the last switch from Redis to memory."""
    last_recovery_at: float | None = None
    """Unix time of the last switch back to Redis."""

    @property
    def hit_rate(self) -> float:
        """Hits per lookup, four decimals; 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return round(self.hits / lookups, 4) if lookups else 0.0
