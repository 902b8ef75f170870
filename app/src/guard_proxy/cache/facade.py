"""GuardCache: one cache of bytes over Redis and memory, with live failover and recovery.

Contract: no method ever raises because of the cache or stalls longer than one bounded Redis
call (see :mod:`.backends.redis`); a failing Redis is counted, logged once per failover, and
replaced by memory until a background probe sees it answer again.

The facade is the two-level lookup; the other concerns have their own modules:

* :mod:`.supervisor` - whether Redis serves: the breaker, the prober and the sweeper,
  failover and recovery logging, scrubbing credentials from errors.
* :mod:`.counters` - what is counted; :meth:`GuardCache.stats` and :meth:`GuardCache.health`
  build ``/cache/stats`` and ``/cache/health`` from it as :mod:`guard_proxy.api_models`.
* :mod:`.codec` - values to bytes and back. The cache stores bytes; the caller's codec says
  what they mean (the proxy's verdict codec lives with ``VerdictService``).
* :mod:`.backends` - the levels, typed by the protocols of :mod:`.backends.base`.

Serving: memory and Redis while the breaker is closed, memory alone while it is open (or
when Redis is not wanted). While the breaker is open no call touches Redis.

Two levels: every store goes to memory and Redis. A read asks memory first (L1) and Redis
only on a memory miss (L2), filling memory from a Redis hit for the TTL Redis has left. That
is safe because a key determines its value (the key hashes the scanner configuration and the
text), so a value in memory is as right as the one in Redis; and a failover starts warm.
Redis remains the shared level: another instance's values are found there. Bytes the codec
cannot decode are a miss (and are overwritten by the computed value).

``get_or_compute`` runs the lookup, the computation and the store once per key per process
for all concurrent callers (single-flight). Only ``compute``'s own exceptions propagate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar, cast, overload

from guard_proxy.api_models import Backend, CacheHealthBody, CacheStatsBody, RedisStatsBody
from guard_proxy.cache.backends.base import LocalBackend, SharedBackend
from guard_proxy.cache.backends.memory import MemoryBackend
from guard_proxy.cache.breaker import CircuitBreaker
from guard_proxy.cache.codec import JSON_OBJECTS, Codec, JsonObject
from guard_proxy.cache.counters import CacheCounters
from guard_proxy.cache.keys import make_key
from guard_proxy.cache.singleflight import SingleFlight
from guard_proxy.cache.supervisor import RedisSupervisor, Skip
from guard_proxy.config.settings import CacheSettings, RedisSettings

if TYPE_CHECKING:
    from guard_proxy.config.settings import Settings

__all__ = ["DISABLED", "HIT", "MISS", "GuardCache"]

logger = logging.getLogger("guard_proxy.cache")

T = TypeVar("T")

HIT = "hit"
MISS = "miss"
DISABLED = "disabled"

# What the single-flight leader hands its waiters: its value, the stored bytes (None when
# the value could not be encoded), and the outcome.
_Shared = tuple[object, bytes | None, str]


class GuardCache:
    """The cache the proxy talks to. Build, ``await start()``, use, ``await aclose()``.

    ``get``, ``set`` and ``get_or_compute`` without a codec take and give JSON objects;
    ``get_or_compute(key, compute, codec)`` takes and gives whatever ``codec`` encodes.
    """

    def __init__(self, cache: CacheSettings, redis: RedisSettings) -> None:
        self.cache_settings = cache
        self.redis_settings = redis
        self.enabled: bool = cache.enabled
        self.configured_backend: str = cache.backend
        self.prefix = cache.prefix
        self.ttl = cache.ttl
        self.wants_redis = cache.enabled and cache.backend in ("auto", "redis") and redis.enabled
        self.memory: LocalBackend = MemoryBackend(cache.max_size)
        self.counts = CacheCounters()
        self.supervisor = RedisSupervisor(redis, self.counts, wanted=self.wants_redis)
        self._flight: SingleFlight[_Shared] = SingleFlight()
        self._started = False

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardCache:
        return cls(settings.cache, settings.redis)

    # ------------------------------------------------------------------ state

    @property
    def active_backend(self) -> Backend:
        """``"redis"``, ``"memory"``, or ``"none"`` when caching is disabled."""
        if not self.enabled:
            return "none"
        return "redis" if self.supervisor.serving else "memory"

    @property
    def redis(self) -> SharedBackend | None:
        """The Redis backend while connected (None before start, when unwanted, after close)."""
        return self.supervisor.redis

    @property
    def breaker(self) -> CircuitBreaker:
        return self.supervisor.breaker

    @property
    def last_error(self) -> str | None:
        """The last Redis error, credentials scrubbed."""
        return self.supervisor.last_error

    @property
    def last_ping_ms(self) -> float | None:
        """The latency of the last PING that answered."""
        return self.supervisor.last_ping_ms

    @property
    def last_failover_at(self) -> float | None:
        return self.counts.last_failover_at

    @property
    def listeners(self) -> list[Callable[[], None]]:
        """Called (no arguments, must not raise or block) when the serving backend changes."""
        return self.supervisor.listeners

    @property
    def redis_address(self) -> str | None:
        """``host:port/db`` of the Redis in use or wanted; never credentials."""
        return self.supervisor.redis_address

    @property
    def redis_endpoint(self) -> str | None:
        """``host:port`` of the Redis in use or wanted, short (Sentinel: the current primary)."""
        return self.supervisor.redis_endpoint

    @property
    def _tasks(self) -> list[asyncio.Task[None]]:
        return self.supervisor._tasks

    def key(self, direction: str, config_hash: str, text: str) -> str:
        """``prefix + direction + ":" + sha256(config_hash + "\\0" + text)``."""
        return make_key(self.prefix, direction, config_hash, text)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect to Redis if it is wanted (falling back to memory), start background tasks.

        Never raises: an unreachable Redis or wrong credentials are logged once and probed.
        """
        if self._started or not self.enabled:
            self._started = True
            return
        self._started = True
        self.supervisor.start_sweeper(self._sweep, self.cache_settings.sweep_interval)
        if not self.wants_redis:
            logger.info(
                "cache: serving from memory (backend=%s, redis.enabled=%s, max_size=%d)",
                self.configured_backend,
                self.redis_settings.enabled,
                self.cache_settings.max_size,
            )
            return
        await self.supervisor.connect()

    async def aclose(self) -> None:
        """Stop the background tasks and close Redis connections. Memory entries stay."""
        await self.supervisor.aclose()

    async def probe(self) -> bool:
        """One probe of Redis now; True when Redis serves after it (see the supervisor)."""
        return await self.supervisor.probe()

    # ------------------------------------------------------------------ the calls

    async def get(self, key: str) -> JsonObject | None:
        """The cached JSON object, or None (miss, disabled, or undecodable)."""
        if not self.enabled:
            return None
        found = await self._lookup(key, JSON_OBJECTS)
        if found is None:
            self.counts.misses += 1
            return None
        self.counts.hits += 1
        return found[0]

    async def set(self, key: str, value: JsonObject, ttl: int | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (default ``cache.ttl``) in memory and Redis."""
        if not self.enabled:
            return
        raw = self._encode(value, JSON_OBJECTS)
        if raw is not None:
            await self._store(key, raw, ttl if ttl is not None and ttl > 0 else self.ttl)

    async def delete(self, key: str) -> bool:
        """Remove ``key`` from both backends; True when either held it."""
        if not self.enabled:
            return False
        in_memory = await self.memory.delete(key)
        in_redis = await self.supervisor.call(lambda r: r.delete(key))
        return in_memory or in_redis is True

    async def exists(self, key: str) -> bool:
        """True when a lookup would find ``key``: in memory, else in Redis (while it serves)."""
        if not self.enabled:
            return False
        if await self.memory.exists(key):
            return True
        found = await self.supervisor.call(lambda r: r.exists(key))
        return found is True

    async def clear(self) -> int:
        """Remove every key under the prefix (SCAN + UNLINK, never FLUSHDB) and memory entries.

        Returns the number of Redis keys removed when Redis served the call, else the number
        of memory entries removed.
        """
        if not self.enabled:
            return 0
        from_memory = await self.memory.clear(self.prefix)
        from_redis = await self.supervisor.call(lambda r: r.clear(self.prefix))
        if isinstance(from_redis, Skip):
            if self.wants_redis:
                logger.warning(
                    "cache: clear reached memory only (%d entries); redis is not available",
                    from_memory,
                )
            return from_memory
        logger.info("cache: cleared %d redis keys and %d memory entries", from_redis, from_memory)
        return from_redis

    @overload
    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[JsonObject]]
    ) -> tuple[JsonObject, str]: ...

    @overload
    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[T]], codec: Codec[T]
    ) -> tuple[T, str]: ...

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[T]], codec: Codec[T] | None = None
    ) -> tuple[T, str]:
        """The cached value (``"hit"``) or ``compute()``'s, stored (``"miss"``).

        ``codec`` turns values into the stored bytes and back (default: JSON objects).
        Concurrent callers of one key share a single lookup and computation; the ones that
        waited get ``"hit"`` and their own decoded copy. With caching disabled: ``compute()``
        and ``"disabled"``.
        """
        if not self.enabled:
            return await compute(), DISABLED
        if codec is None:
            codec = cast("Codec[T]", JSON_OBJECTS)
        chosen = codec
        counts = self.counts
        if key not in self._flight:
            # The common case, a memory hit with nobody computing the key: what the flight
            # would do (the leader's memory read completes without yielding, so nobody could
            # join it), without the flight's future.
            raw = await self.memory.get(key)
            if raw is not None:
                hit = chosen.decode(raw)
                if hit is not None:
                    counts.memory_hits += 1
                    counts.hits += 1
                    return hit, HIT
        mine: list[T] = []  # the leader's own value, typed (the flight carries objects)

        async def load() -> _Shared:
            found = await self._lookup(key, chosen)
            if found is not None:
                counts.hits += 1
                mine.append(found[0])
                return found[0], found[1], HIT
            counts.misses += 1
            value = await compute()
            mine.append(value)
            raw = self._encode(value, chosen)
            if raw is not None:
                await self._store(key, raw, self.ttl)
            return value, raw, MISS

        (value, raw, outcome), shared = await self._flight.do(key, load)
        if not shared:
            return mine[0], outcome
        counts.hits += 1
        counts.coalesced += 1
        copy = chosen.decode(raw) if raw is not None else None
        return (copy if copy is not None else cast(T, value)), HIT

    # ------------------------------------------------------------------ reports

    def counters(self) -> CacheStatsBody:
        """:meth:`stats` of this process alone, without asking Redis (``redis`` is None)."""
        c = self.counts
        return CacheStatsBody(
            enabled=self.enabled,
            configured_backend=self.configured_backend,
            active_backend=self.active_backend,
            hits=c.hits,
            memory_hits=c.memory_hits,
            redis_hits=c.redis_hits,
            misses=c.misses,
            hit_rate=c.hit_rate,
            sets=c.sets,
            errors=c.errors,
            coalesced=c.coalesced,
            pool_timeouts=c.pool_timeouts,
            failovers=c.failovers,
            recoveries=c.recoveries,
            last_failover_at=c.last_failover_at,
            last_recovery_at=c.last_recovery_at,
            breaker_state=self.supervisor.breaker.state,
            memory_entries=len(self.memory) if self.enabled else 0,
            memory_max_size=self.memory.max_size,
            memory_evictions=self.memory.evictions,
            redis=None,
        )

    async def stats(self) -> CacheStatsBody:
        """Counters, the serving backend, and Redis memory and key count when connected."""
        report = self.counters()
        if not self.enabled:
            return report
        info = await self.supervisor.call(lambda r: r.info())
        counted = await self.supervisor.call(lambda r: r.count_keys(self.prefix))
        backend = self.redis
        if not isinstance(info, Skip) and not isinstance(counted, Skip) and backend:
            keys, complete = counted
            report.redis = RedisStatsBody(
                used_memory=info["used_memory"],
                maxmemory=info["maxmemory"],
                maxmemory_policy=info["maxmemory_policy"],
                keys=keys,
                keys_complete=complete,
                address=backend.address,
            )
        return report

    async def health(self) -> CacheHealthBody:
        """Can the cache serve, and from what? Memory counts as healthy: requests succeed.

        ``healthy`` is false only once the cache is closed. ``degraded`` is true while a
        wanted Redis (``backend`` auto/redis with ``redis.enabled``) is not serving.
        """
        latency_ms = await self.supervisor.ping() if self.enabled else None
        active = self.active_backend
        if active != "redis":  # another call tripped the breaker while we pinged
            latency_ms = None
        supervisor = self.supervisor
        return CacheHealthBody(
            healthy=not supervisor.closing,
            degraded=self.wants_redis and latency_ms is None,
            enabled=self.enabled,
            configured_backend=self.configured_backend,
            active_backend=active,
            redis_connected=latency_ms is not None,
            latency_ms=latency_ms,
            redis_address=supervisor.redis_address,
            breaker=supervisor.breaker.snapshot(),
            last_error=supervisor.last_error,
        )

    # ------------------------------------------------------------------ internals

    async def _lookup(self, key: str, codec: Codec[T]) -> tuple[T, bytes] | None:
        """Memory first, then Redis (filling memory); counts ``memory_hits``/``redis_hits``."""
        raw = await self.memory.get(key)
        if raw is not None:
            value = codec.decode(raw)
            if value is not None:
                self.counts.memory_hits += 1
                return value, raw
        found = await self.supervisor.call(lambda r: r.get_with_ttl(key))
        if isinstance(found, Skip):
            return None
        raw, left = found
        if raw is None:
            return None
        value = codec.decode(raw)
        if value is None:
            return None
        self.counts.redis_hits += 1
        if left is not None and left > 0:  # None: no expiry, or PTTL refused by an ACL
            await self.memory.set(key, raw, min(left, self.ttl))
        return value, raw

    def _encode(self, value: T, codec: Codec[T]) -> bytes | None:
        try:
            return codec.encode(value)
        except (TypeError, ValueError) as exc:
            self.supervisor.warn_once(
                "serialise", f"cache: a verdict could not be serialised ({exc})"
            )
            return None

    async def _store(self, key: str, raw: bytes, ttl: int) -> None:
        await self.memory.set(key, raw, ttl)
        await self.supervisor.call(lambda r: r.set(key, raw, ttl))
        self.counts.sets += 1

    async def _sweep(self) -> int:
        return await self.memory.sweep()  # late-bound: ``memory`` may be replaced (tests)
