"""GuardCache: one verdict cache over Redis and memory, with live failover and recovery.

Contract: no method ever raises because of the cache or stalls longer than one bounded Redis
call (see :mod:`.backends.redis`); a failing Redis is counted, logged once per failover, and
replaced by memory until a background probe sees it answer again.

* Serving: memory and Redis while the breaker is closed, memory alone while it is open (or
  when Redis is not wanted). While the breaker is open no call touches Redis; the prober
  PINGs every ``redis.probe_interval`` and closes it.
* Two levels: every ``set`` goes to memory and Redis. A read asks memory first (L1) and
  Redis only on a memory miss (L2), filling memory from a Redis hit for the TTL Redis has
  left. That is safe because a key determines its verdict (the key hashes the scanner
  configuration and the text), so a verdict in memory is as right as the one in Redis; and a
  failover starts warm. Redis remains the shared level: another instance's verdicts are
  found there.
* ``get_or_compute`` runs the lookup, the computation and the store once per key per process
  for all concurrent callers (single-flight). Only ``compute``'s own exceptions propagate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from guard_proxy.cache.backends.memory import MemoryBackend
from guard_proxy.cache.breaker import CircuitBreaker
from guard_proxy.cache.endpoint import redis_endpoint
from guard_proxy.cache.keys import make_key
from guard_proxy.cache.singleflight import SingleFlight
from guard_proxy.config.settings import CacheSettings, RedisSettings
from guard_proxy.exceptions import AuthFailed, CacheBackendError, CommandRejected, PoolTimeout

if TYPE_CHECKING:
    from guard_proxy.cache.backends.redis import RedisBackend
    from guard_proxy.config.settings import Settings

__all__ = ["GuardCache"]

logger = logging.getLogger("guard_proxy.cache")

T = TypeVar("T")
Verdict = dict[str, Any]

HIT = "hit"
MISS = "miss"
DISABLED = "disabled"


class _Skip:
    """Marker: Redis did not serve this call (not wanted, breaker open, or it just failed)."""


_SKIP = _Skip()


class GuardCache:
    """The verdict cache the proxy talks to. Build, ``await start()``, use, ``await aclose()``."""

    def __init__(self, cache: CacheSettings, redis: RedisSettings) -> None:
        self.cache_settings = cache
        self.redis_settings = redis
        self.enabled: bool = cache.enabled
        self.configured_backend: str = cache.backend
        self.prefix = cache.prefix
        self.ttl = cache.ttl
        self.wants_redis = cache.enabled and cache.backend in ("auto", "redis") and redis.enabled
        self.memory = MemoryBackend(cache.max_size)
        self.redis: RedisBackend | None = None
        self.breaker = CircuitBreaker(redis.breaker_threshold)
        self._flight: SingleFlight[tuple[Verdict, str]] = SingleFlight()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closing = False
        self._secrets = [s for s in (redis.password, redis.sentinel_password) if s]
        self._down_since: float | None = None
        self._warned: set[str] = set()
        self.last_error: str | None = None
        self.last_ping_ms: float | None = None  # the last PING that answered
        # Called (no arguments, must not raise or block) when the serving backend changes.
        self.listeners: list[Callable[[], None]] = []
        # counters
        self.hits = 0  # memory_hits + redis_hits + coalesced
        self.memory_hits = 0
        self.redis_hits = 0
        self.misses = 0
        self.errors = 0
        self.sets = 0
        self.coalesced = 0
        self.pool_timeouts = 0
        self.failovers = 0
        self.recoveries = 0
        self.last_failover_at: float | None = None
        self.last_recovery_at: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardCache:
        return cls(settings.cache, settings.redis)

    # ------------------------------------------------------------------ state

    @property
    def active_backend(self) -> str:
        """``"redis"``, ``"memory"``, or ``"none"`` when caching is disabled."""
        if not self.enabled:
            return "none"
        if self.redis is not None and self.breaker.is_closed:
            return "redis"
        return "memory"

    @property
    def redis_address(self) -> str | None:
        """``host:port/db`` of the Redis in use or wanted; never credentials."""
        if self.redis is not None:
            return self.redis.address
        if self.wants_redis:
            s = self.redis_settings
            if s.sentinels:
                return f"{s.sentinel_service}/{s.db} via sentinels {','.join(s.sentinels)}"
            return f"{s.host}:{s.port}/{s.db}"
        return None

    @property
    def redis_endpoint(self) -> str | None:
        """``host:port`` of the Redis in use or wanted, short (Sentinel: the current primary)."""
        if self.redis is not None:
            return self.redis.endpoint
        return redis_endpoint(self.redis_settings) if self.wants_redis else None

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
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="guard-cache-sweeper"))
        if not self.wants_redis:
            logger.info(
                "cache: serving from memory (backend=%s, redis.enabled=%s, max_size=%d)",
                self.configured_backend,
                self.redis_settings.enabled,
                self.cache_settings.max_size,
            )
            return
        from guard_proxy.cache.backends.redis import RedisBackend

        try:
            self.redis = RedisBackend(self.redis_settings)
        except Exception as exc:  # bad settings that only redis-py detects
            self.last_error = self._scrub(_describe(exc))
            logger.error(
                "cache: cannot build the redis client (%s); serving from memory", self.last_error
            )
            return
        try:
            latency = await self.redis.ping()
        except CacheBackendError as exc:
            self.breaker.trip()
            self._failed_over(exc, at_start=True)
        else:
            self.last_ping_ms = _ms(latency)
            logger.info(
                "cache: serving from redis at %s (PING %.2f ms)",
                self.redis.address,
                latency * 1000,
            )
        self._tasks.append(asyncio.create_task(self._probe_loop(), name="guard-cache-prober"))

    async def aclose(self) -> None:
        """Stop the background tasks and close Redis connections. Memory entries stay."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # redis-py can lose a cancellation that races with a failing connect (the task then
        # carries on with the connect's error), so the loops also watch ``_closing`` and the
        # cancel is repeated until they are gone.
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.05)
            for task in pending:
                task.cancel()
        backend, self.redis = self.redis, None
        if backend is not None:
            with contextlib.suppress(Exception):
                await backend.aclose()

    # ------------------------------------------------------------------ the calls

    async def get(self, key: str) -> Verdict | None:
        """The cached verdict, or None (miss, disabled, or undecodable)."""
        if not self.enabled:
            return None
        value = await self._lookup(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def set(self, key: str, value: Verdict, ttl: int | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (default ``cache.ttl``) in memory and Redis."""
        if not self.enabled:
            return
        try:
            raw = orjson.dumps(value)
        except TypeError as exc:
            self._warn_once("serialise", f"cache: a verdict could not be serialised ({exc})")
            return
        await self._store(key, raw, ttl if ttl is not None and ttl > 0 else self.ttl)

    async def delete(self, key: str) -> bool:
        """Remove ``key`` from both backends; True when either held it."""
        if not self.enabled:
            return False
        in_memory = await self.memory.delete(key)
        in_redis = await self._on_redis(lambda r: r.delete(key))
        return in_memory or in_redis is True

    async def exists(self, key: str) -> bool:
        """True when a lookup would find ``key``: in memory, else in Redis (while it serves)."""
        if not self.enabled:
            return False
        if await self.memory.exists(key):
            return True
        found = await self._on_redis(lambda r: r.exists(key))
        return found is True

    async def clear(self) -> int:
        """Remove every key under the prefix (SCAN + UNLINK, never FLUSHDB) and memory entries.

        Returns the number of Redis keys removed when Redis served the call, else the number
        of memory entries removed.
        """
        if not self.enabled:
            return 0
        from_memory = await self.memory.clear(self.prefix)
        from_redis = await self._on_redis(lambda r: r.clear(self.prefix))
        if isinstance(from_redis, _Skip):
            if self.wants_redis:
                logger.warning(
                    "cache: clear reached memory only (%d entries); redis is not available",
                    from_memory,
                )
            return from_memory
        logger.info("cache: cleared %d redis keys and %d memory entries", from_redis, from_memory)
        return from_redis

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[Verdict]]
    ) -> tuple[Verdict, str]:
        """The cached verdict (``"hit"``) or ``compute()``'s, stored (``"miss"``).

        Concurrent callers of one key share a single lookup and computation; the ones that
        waited get ``"hit"``. With caching disabled: ``compute()`` and ``"disabled"``.
        """
        if not self.enabled:
            return await compute(), DISABLED

        async def load() -> tuple[Verdict, str]:
            cached = await self._lookup(key)
            if cached is not None:
                self.hits += 1
                return cached, HIT
            self.misses += 1
            value = await compute()
            await self.set(key, value)
            return value, MISS

        (value, outcome), shared = await self._flight.do(key, load)
        if not shared:
            return value, outcome
        self.hits += 1
        self.coalesced += 1
        return _copy(value), HIT

    # ------------------------------------------------------------------ reports

    async def stats(self) -> dict[str, Any]:
        """Counters, the serving backend, and Redis memory and key count when connected."""
        report = self.counters()
        if not self.enabled:
            return report
        info = await self._on_redis(lambda r: r.info())
        counted = await self._on_redis(lambda r: r.count_keys(self.prefix))
        if not isinstance(info, _Skip) and not isinstance(counted, _Skip) and self.redis:
            keys, complete = counted
            report["redis"] = {
                **info,
                "keys": keys,
                "keys_complete": complete,
                "address": self.redis.address,
            }
        return report

    def counters(self) -> dict[str, Any]:
        """:meth:`stats` of this process alone, without asking Redis (``"redis"`` is None)."""
        lookups = self.hits + self.misses
        report: dict[str, Any] = {
            "enabled": self.enabled,
            "configured_backend": self.configured_backend,
            "active_backend": self.active_backend,
            "hits": self.hits,
            "memory_hits": self.memory_hits,
            "redis_hits": self.redis_hits,
            "misses": self.misses,
            "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
            "sets": self.sets,
            "errors": self.errors,
            "coalesced": self.coalesced,
            "pool_timeouts": self.pool_timeouts,
            "failovers": self.failovers,
            "recoveries": self.recoveries,
            "last_failover_at": self.last_failover_at,
            "last_recovery_at": self.last_recovery_at,
            "breaker_state": self.breaker.state,
            "memory_entries": len(self.memory) if self.enabled else 0,
            "memory_max_size": self.memory.max_size,
            "memory_evictions": self.memory.evictions,
            "redis": None,
        }
        return report

    async def health(self) -> dict[str, Any]:
        """Can the cache serve, and from what? Memory counts as healthy: requests succeed.

        ``healthy`` is false only once the cache is closed. ``degraded`` is true while a
        wanted Redis (``backend`` auto/redis with ``redis.enabled``) is not serving.
        """
        latency_ms: float | None = None
        if self.enabled:
            latency = await self._on_redis(lambda r: r.ping())
            if not isinstance(latency, _Skip):
                latency_ms = self.last_ping_ms = _ms(latency)
        active = self.active_backend
        if active != "redis":  # another call tripped the breaker while we pinged
            latency_ms = None
        connected = latency_ms is not None
        return {
            "healthy": not self._closing,
            "degraded": self.wants_redis and not connected,
            "enabled": self.enabled,
            "configured_backend": self.configured_backend,
            "active_backend": active,
            "redis_connected": connected,
            "latency_ms": latency_ms,
            "redis_address": self.redis_address,
            "breaker": self.breaker.snapshot(),
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ probing

    async def probe(self) -> bool:
        """One probe now (the background prober calls this); True when Redis serves after it.

        Open breaker: drop old connections, PING, close the breaker on an answer. Closed
        breaker: PING, and count a failure like any other call.
        """
        backend = self.redis
        if backend is None:
            return False
        if self.breaker.is_closed:
            latency = await self._on_redis(lambda r: r.ping())
            if not isinstance(latency, _Skip):
                self.last_ping_ms = _ms(latency)
            return self.breaker.is_closed
        try:
            await backend.reset()
            latency = await backend.ping()
        except PoolTimeout:
            return False
        except CacheBackendError as exc:
            self.last_error = self._scrub(str(exc))
            return False
        self._recovered(latency)
        return True

    async def _probe_loop(self) -> None:
        interval = max(self.redis_settings.probe_interval, 0.01)
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await self.probe()
            except Exception as exc:  # never let the prober die
                self._warn_once("probe", f"cache: probe failed unexpectedly ({_describe(exc)})")

    async def _sweep_loop(self) -> None:
        interval = max(self.cache_settings.sweep_interval, 0.01)
        while not self._closing:
            await asyncio.sleep(interval)
            try:
                await self.memory.sweep()
            except Exception as exc:  # never let the sweeper die
                self._warn_once("sweep", f"cache: sweep failed unexpectedly ({_describe(exc)})")

    # ------------------------------------------------------------------ internals

    async def _lookup(self, key: str) -> Verdict | None:
        """Memory first, then Redis (filling memory); counts ``memory_hits``/``redis_hits``."""
        raw = await self.memory.get(key)
        if raw is not None:
            value = _decode(raw)
            if value is not None:
                self.memory_hits += 1
                return value
        found = await self._on_redis(lambda r: r.get_with_ttl(key))
        if isinstance(found, _Skip):
            return None
        raw, left = found
        if raw is None:
            return None
        value = _decode(raw)
        if value is None:
            return None
        self.redis_hits += 1
        if left is not None and left > 0:  # None: no expiry, or PTTL refused by an ACL
            await self.memory.set(key, raw, min(left, self.ttl))
        return value

    async def _store(self, key: str, raw: bytes, ttl: int) -> None:
        await self.memory.set(key, raw, ttl)
        await self._on_redis(lambda r: r.set(key, raw, ttl))
        self.sets += 1

    async def _on_redis(self, op: Callable[[RedisBackend], Awaitable[T]]) -> T | _Skip:
        """Run ``op`` on Redis if the breaker allows; any failure is absorbed into ``_SKIP``."""
        backend = self.redis
        if backend is None or self.breaker.is_open:
            return _SKIP
        try:
            result = await op(backend)
        except PoolTimeout:
            self.pool_timeouts += 1  # local congestion: Redis is fine, do not trip
            return _SKIP
        except CommandRejected as exc:
            self.errors += 1
            self.last_error = self._scrub(str(exc))
            self._warn_once(str(exc).split(":")[0], f"cache: redis rejected a command ({exc})")
            return _SKIP
        except CacheBackendError as exc:
            self._record_failure(exc)
            return _SKIP
        except Exception as exc:  # a bug must not fail a request either
            self.errors += 1
            self.last_error = self._scrub(_describe(exc))
            self._warn_once(type(exc).__name__, f"cache: unexpected error ({self.last_error})")
            return _SKIP
        self.breaker.record_success()
        return result

    def _record_failure(self, exc: CacheBackendError) -> None:
        self.errors += 1
        self.last_error = self._scrub(str(exc))
        if self.breaker.record_failure():
            self._failed_over(exc, at_start=False)

    def _failed_over(self, exc: CacheBackendError, *, at_start: bool) -> None:
        self.failovers += 1
        self.last_failover_at = time.time()
        self._down_since = time.monotonic()
        self.last_error = self._scrub(str(exc))
        self.last_ping_ms = None
        self._notify()
        address = self.redis_address
        interval = self.redis_settings.probe_interval
        if isinstance(exc, AuthFailed):
            user = self.redis_settings.username or "default"
            logger.error(
                "cache: redis authentication failed at %s (user %r): %s; serving from memory, "
                "probing every %gs",
                address,
                user,
                self.last_error,
                interval,
            )
            return
        logger.warning(
            "cache: redis at %s %s (%s); serving from memory, probing every %gs",
            address,
            "is unavailable at start-up" if at_start else "failed",
            self.last_error,
            interval,
        )

    def _recovered(self, latency: float) -> None:
        self.breaker.close()
        self.recoveries += 1
        self.last_recovery_at = time.time()
        down_for = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        self._down_since = None
        self._warned.clear()
        self.last_ping_ms = _ms(latency)
        self._notify()
        logger.warning(
            "cache: redis at %s answers again after %.1fs (PING %.2f ms); serving from redis",
            self.redis_address,
            down_for,
            latency * 1000,
        )

    def _notify(self) -> None:
        for listener in self.listeners:
            try:
                listener()
            except Exception:  # a listener must never break the cache
                logger.debug("cache: a backend-change listener failed", exc_info=True)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(self._scrub(message))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _decode(raw: bytes) -> Verdict | None:
    """The verdict dict in ``raw``, or None when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _copy(value: Verdict) -> Verdict:
    """An independent copy for a caller that shared another caller's computation."""
    try:
        copied: Verdict = orjson.loads(orjson.dumps(value))
    except TypeError:
        return value
    return copied


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:160].rstrip(".") if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ms(seconds: float) -> float:
    """A latency in milliseconds, as reported (three decimals)."""
    return round(seconds * 1000, 3)
