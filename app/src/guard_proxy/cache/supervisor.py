"""RedisSupervisor: whether the shared level (Redis) serves, and the cache's background work.

It owns the Redis backend and its :class:`~.breaker.CircuitBreaker`, and every call to Redis
goes through :meth:`RedisSupervisor.call`, which never raises: a failure is counted, the
error is kept (credentials scrubbed) and the call answers :data:`SKIP`, as it does while the
breaker is open. The first failure that opens the breaker is a failover (logged once, with
where and why); the background prober PINGs every ``redis.probe_interval`` and closes the
breaker when Redis answers again, a recovery (logged once, with how long Redis was away).
Listeners are told of both. The sweeper drops expired memory entries every
``cache.sweep_interval``. Neither loop ever dies of an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, final

from guard_proxy.cache.backends.base import SharedBackend
from guard_proxy.cache.breaker import CircuitBreaker
from guard_proxy.cache.counters import CacheCounters
from guard_proxy.cache.redis_client import redis_address, redis_endpoint, redis_secrets, scrub
from guard_proxy.config.settings import RedisSettings
from guard_proxy.exceptions import AuthFailed, CacheBackendError, CommandRejected, PoolTimeout

__all__ = ["SKIP", "RedisSupervisor", "Skip", "describe"]

logger = logging.getLogger("guard_proxy.cache")

T = TypeVar("T")


@final
class Skip:
    """Marker: Redis did not serve this call (not wanted, breaker open, or it just failed)."""


SKIP = Skip()

Connect = Callable[[RedisSettings], SharedBackend]
"""Builds the Redis backend from settings (raising when redis-py refuses them)."""


def _redis_backend(settings: RedisSettings) -> SharedBackend:
    from guard_proxy.cache.backends.redis import RedisBackend  # redis-py only when wanted

    return RedisBackend(settings)


class RedisSupervisor:
    """The Redis level's health: breaker, prober, failover and recovery; and the sweeper.

    **Parameters:**

    * **settings** - the ``redis`` settings (address, credentials, breaker, probe interval).
    * **counters** - the cache's counters; errors, pool timeouts, failovers and recoveries
      are counted here.
    * **wanted** - whether the cache is meant to use Redis (then :meth:`connect` is called);
      only the descriptions of where Redis is depend on it.
    * **connect** - builds the backend; tests pass a fake one.
    """

    def __init__(
        self,
        settings: RedisSettings,
        counters: CacheCounters,
        *,
        wanted: bool,
        connect: Connect = _redis_backend,
    ) -> None:
        self.settings = settings
        self.counters = counters
        self.wanted = wanted
        self.redis: SharedBackend | None = None
        self.breaker = CircuitBreaker(settings.breaker_threshold)
        self.last_error: str | None = None
        self.last_ping_ms: float | None = None  # the last PING that answered
        # Called (no arguments, must not raise or block) when the serving backend changes.
        self.listeners: list[Callable[[], None]] = []
        self.closing = False
        self._connect = connect
        self._tasks: list[asyncio.Task[None]] = []
        self._secrets = redis_secrets(settings)
        self._down_since: float | None = None
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ state

    @property
    def serving(self) -> bool:
        """Redis is connected and the breaker lets calls through."""
        return self.redis is not None and self.breaker.is_closed

    @property
    def redis_address(self) -> str | None:
        """``host:port/db`` of the Redis in use or wanted; never credentials."""
        if self.redis is not None:
            return self.redis.address
        return redis_address(self.settings) if self.wanted else None

    @property
    def redis_endpoint(self) -> str | None:
        """``host:port`` of the Redis in use or wanted, short (Sentinel: the current primary)."""
        if self.redis is not None:
            return self.redis.endpoint
        return redis_endpoint(self.settings) if self.wanted else None

    # ------------------------------------------------------------------ lifecycle

    def start_sweeper(self, sweep: Callable[[], Awaitable[int]], interval: float) -> None:
        """Run ``sweep`` every ``interval`` seconds in the background until :meth:`aclose`."""
        task = asyncio.create_task(self._sweep_loop(sweep, interval), name="guard-cache-sweeper")
        self._tasks.append(task)

    async def connect(self) -> None:
        """Build the Redis backend and PING it; start the prober. Never raises.

        Unreachable or refusing (wrong credentials): a failover at start-up, then probed.
        Settings that redis-py refuses: logged, memory only, no prober.
        """
        try:
            self.redis = self._connect(self.settings)
        except Exception as exc:  # bad settings that only redis-py detects
            self.last_error = self.scrub(describe(exc))
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
        """Stop the background tasks and close the Redis connections."""
        self.closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # redis-py can lose a cancellation that races with a failing connect (the task then
        # carries on with the connect's error), so the loops also watch ``closing`` and the
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

    # ------------------------------------------------------------------ calls

    async def call(self, op: Callable[[SharedBackend], Awaitable[T]]) -> T | Skip:
        """Run ``op`` on Redis if the breaker allows; any failure is absorbed into ``SKIP``."""
        backend = self.redis
        if backend is None or self.breaker.is_open:
            return SKIP
        try:
            result = await op(backend)
        except PoolTimeout:
            self.counters.pool_timeouts += 1  # local congestion: Redis is fine, do not trip
            return SKIP
        except CommandRejected as exc:
            self.counters.errors += 1
            self.last_error = self.scrub(str(exc))
            self.warn_once(str(exc).split(":")[0], f"cache: redis rejected a command ({exc})")
            return SKIP
        except CacheBackendError as exc:
            self._record_failure(exc)
            return SKIP
        except Exception as exc:  # a bug must not fail a request either
            self.counters.errors += 1
            self.last_error = self.scrub(describe(exc))
            self.warn_once(type(exc).__name__, f"cache: unexpected error ({self.last_error})")
            return SKIP
        self.breaker.record_success()
        return result

    async def ping(self) -> float | None:
        """PING through :meth:`call`: the latency in ms (kept as ``last_ping_ms``), or None."""
        latency = await self.call(lambda r: r.ping())
        if isinstance(latency, Skip):
            return None
        self.last_ping_ms = _ms(latency)
        return self.last_ping_ms

    async def probe(self) -> bool:
        """One probe now (the background prober calls this); True when Redis serves after it.

        Open breaker: drop old connections, PING, close the breaker on an answer. Closed
        breaker: PING, and count a failure like any other call.
        """
        backend = self.redis
        if backend is None:
            return False
        if self.breaker.is_closed:
            await self.ping()
            return self.breaker.is_closed
        try:
            await backend.reset()
            latency = await backend.ping()
        except PoolTimeout:
            return False
        except CacheBackendError as exc:
            self.last_error = self.scrub(str(exc))
            return False
        self._recovered(latency)
        return True

    # ------------------------------------------------------------------ logging

    def warn_once(self, kind: str, message: str) -> None:
        """Log ``message`` (scrubbed) the first time ``kind`` happens since the last recovery."""
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(self.scrub(message))

    def scrub(self, text: str) -> str:
        """``text`` with the Redis and Sentinel passwords replaced by ``***``."""
        return scrub(text, self._secrets)

    # ------------------------------------------------------------------ internals

    async def _probe_loop(self) -> None:
        interval = max(self.settings.probe_interval, 0.01)
        while not self.closing:
            await asyncio.sleep(interval)
            try:
                await self.probe()
            except Exception as exc:  # never let the prober die
                self.warn_once("probe", f"cache: probe failed unexpectedly ({describe(exc)})")

    async def _sweep_loop(self, sweep: Callable[[], Awaitable[int]], interval: float) -> None:
        interval = max(interval, 0.01)
        while not self.closing:
            await asyncio.sleep(interval)
            try:
                await sweep()
            except Exception as exc:  # never let the sweeper die
                self.warn_once("sweep", f"cache: sweep failed unexpectedly ({describe(exc)})")

    def _record_failure(self, exc: CacheBackendError) -> None:
        self.counters.errors += 1
        self.last_error = self.scrub(str(exc))
        if self.breaker.record_failure():
            self._failed_over(exc, at_start=False)

    def _failed_over(self, exc: CacheBackendError, *, at_start: bool) -> None:
        self.counters.failovers += 1
        self.counters.last_failover_at = time.time()
        self._down_since = time.monotonic()
        self.last_error = self.scrub(str(exc))
        self.last_ping_ms = None
        self._notify()
        address = self.redis_address
        interval = self.settings.probe_interval
        if isinstance(exc, AuthFailed):
            user = self.settings.username or "default"
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
        self.counters.recoveries += 1
        self.counters.last_recovery_at = time.time()
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


def describe(exc: BaseException) -> str:
    """``ClassName: first line`` of an error, short."""
    text = str(exc).strip().splitlines()[0][:160].rstrip(".") if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ms(seconds: float) -> float:
    """A latency in milliseconds, as reported (three decimals)."""
    return round(seconds * 1000, 3)
