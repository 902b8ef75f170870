"""The Redis backend: ``redis.asyncio`` with hiredis, a bounded pool, no retries.

Contract on top of :class:`~.base.SharedBackend`:

* Every call is bounded: pool wait <= ``socket_timeout``, connect <= ``socket_connect_timeout``,
  each read <= ``socket_timeout``, and an outer deadline covers the whole call. redis-py's
  retries are off (``Retry(NoBackoff(), 0)``): a retry against a dead server only multiplies
  the stall (with redis-py's default retries one GET took ~4 s against a refused Redis and
  ~5 s against a frozen one); the facade's breaker is the retry policy.
* Errors are translated here, once, to the cache errors of :mod:`guard_proxy.exceptions`;
  nothing from ``redis`` leaks out. Pool exhaustion raises ``PoolTimeout``, so it never
  trips the breaker.
* The server is found either statically (``host``/``port``) or through Sentinel
  (``sentinels`` + ``sentinel_service``): then every new connection asks the Sentinels for
  the current primary, and :meth:`RedisBackend.reset` drops old connections so that the next
  call follows a promotion.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.exceptions as rex
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from guard_proxy.cache.backends.base import RedisMemoryInfo, SharedBackend
from guard_proxy.cache.keys import glob_escape
from guard_proxy.cache.redis_client import (
    build_pool,
    pooled_client,
    redis_address,
    redis_endpoint,
)
from guard_proxy.config.settings import RedisSettings
from guard_proxy.exceptions import AuthFailed, CacheBackendError, CommandRejected, PoolTimeout

__all__ = ["RedisBackend"]

T = TypeVar("T")

SCAN_BATCH = 500
"""Keys per SCAN step and per UNLINK in :meth:`RedisBackend.clear`."""
COUNT_BUDGET = 200
"""SCAN steps :meth:`RedisBackend.count_keys` may take (bounded cost on a large keyspace)."""


class RedisBackend(SharedBackend):
    """Verdicts in Redis. Build it with settings, then ``await ping()`` to see if it answers."""

    name = "redis"

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.sentinel: Sentinel | None
        self.pool: ConnectionPool
        self.pool, self.sentinel = build_pool(settings)
        self.client = pooled_client(self.pool)
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._pool_wait = settings.socket_timeout
        # Outer bound of one call: connect, AUTH/SELECT on a new connection, the command;
        # with Sentinel, a new connection may first ask each Sentinel in turn.
        one_round = settings.socket_connect_timeout + settings.socket_timeout
        self._deadline = (
            settings.socket_connect_timeout
            + 3 * settings.socket_timeout
            + len(settings.sentinels) * one_round
            + 0.05
        )

    # ------------------------------------------------------------------ description

    @property
    def primary(self) -> tuple[str, int] | None:
        """The primary the Sentinels last named (None: static address, or none named yet)."""
        if isinstance(self.pool, SentinelConnectionPool):
            primary: tuple[str, int] | None = self.pool.master_address
            return primary
        return None

    @property
    def address(self) -> str:
        """``host:port/db`` of the server in use (Sentinel: the last primary it named)."""
        return redis_address(self.settings, self.primary)

    @property
    def endpoint(self) -> str:
        """``host:port`` of the server in use, short (Sentinel: the primary it last named)."""
        return redis_endpoint(self.settings, self.primary)

    # ------------------------------------------------------------------ the call wrapper

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run one bounded call; translate every failure to a ``CacheBackendError``."""
        try:
            async with asyncio.timeout(self._pool_wait):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout("no free Redis connection within the pool wait") from None
        try:
            async with asyncio.timeout(self._deadline):
                return await op()
        except TimeoutError as exc:
            raise CacheBackendError(
                f"TimeoutError: no answer within {self._deadline:.3f}s"
            ) from exc
        except rex.AuthenticationError as exc:
            raise AuthFailed(_describe(exc)) from exc
        except rex.ReadOnlyError as exc:  # a demoted primary: look for the new one
            raise CacheBackendError(_describe(exc)) from exc
        except rex.ResponseError as exc:
            message = str(exc)
            if message.startswith(("WRONGPASS", "NOAUTH", "invalid password")):
                raise AuthFailed(_describe(exc)) from exc
            raise CommandRejected(_describe(exc)) from exc
        except (rex.RedisError, OSError) as exc:
            raise CacheBackendError(_describe(exc)) from exc
        finally:
            self._slots.release()

    # ------------------------------------------------------------------ CacheBackend

    async def get(self, key: str) -> bytes | None:
        value = await self._call(lambda: self.client.get(key))
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._call(lambda: self.client.set(key, value, ex=ttl))

    async def get_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        """The value and its remaining TTL in seconds, in one round trip (GET + PTTL).

        The TTL is None when the key has no expiry or PTTL was refused (an ACL without it);
        the value is then still returned.
        """

        async def op() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            if isinstance(replies[0], BaseException):
                raise replies[0]  # inside _call, so it is translated like any error
            return replies

        value, pttl = await self._call(op)
        if isinstance(value, str):
            value = value.encode()
        ttl = pttl / 1000 if isinstance(pttl, int) and pttl >= 0 else None
        return value, ttl

    async def delete(self, key: str) -> bool:
        count: int = await self._call(lambda: self.client.unlink(key))
        return count > 0

    async def exists(self, key: str) -> bool:
        count: int = await self._call(lambda: self.client.exists(key))
        return count > 0

    async def clear(self, prefix: str) -> int:
        """SCAN MATCH ``prefix*`` and UNLINK in batches; never FLUSHDB, never a foreign key."""
        match = glob_escape(prefix) + "*"
        removed = 0
        cursor: int = 0
        while True:
            cursor, keys = await self._call(
                lambda c=cursor: self.client.scan(c, match=match, count=SCAN_BATCH)  # type: ignore[misc]
            )
            if keys:
                removed += await self._call(lambda k=keys: self.client.unlink(*k))  # type: ignore[misc]
            if cursor == 0:
                return removed

    async def ping(self) -> float:
        started = time.perf_counter()
        await self._call(self.client.ping)
        return time.perf_counter() - started

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.pool.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()

    # ------------------------------------------------------------------ SharedBackend

    async def reset(self) -> None:
        """Drop every pooled connection: the next call connects afresh (and asks Sentinel)."""
        await self.pool.disconnect(inuse_connections=True)
        if isinstance(self.pool, SentinelConnectionPool):
            self.pool.master_address = None

    async def info(self) -> RedisMemoryInfo:
        """``used_memory``, ``maxmemory``, ``maxmemory_policy`` from INFO memory.

        A least-privilege ACL user may not run INFO (it is ``@dangerous``): then all three
        are None rather than an error.
        """
        try:
            raw: dict[str, Any] = await self._call(lambda: self.client.info("memory"))
        except CommandRejected:
            raw = {}
        return {
            "used_memory": raw.get("used_memory"),
            "maxmemory": raw.get("maxmemory"),
            "maxmemory_policy": raw.get("maxmemory_policy"),
        }

    async def count_keys(self, prefix: str) -> tuple[int, bool]:
        """Keys under ``prefix`` by SCAN, at most :data:`COUNT_BUDGET` steps: ``(n, complete)``."""
        match = glob_escape(prefix) + "*"
        cursor: int = 0
        total = 0
        for _ in range(COUNT_BUDGET):
            cursor, keys = await self._call(
                lambda c=cursor: self.client.scan(c, match=match, count=SCAN_BATCH * 2)  # type: ignore[misc]
            )
            total += len(keys)
            if cursor == 0:
                return total, True
        return total, False


def _describe(exc: BaseException) -> str:
    """``ClassName: first line`` of an error, short. Server error texts carry no secrets."""
    if isinstance(exc, MasterNotFoundError):
        # redis-py appends a repr of every Sentinel client; keep only the error classes.
        head, _, tail = str(exc).partition(" : ")
        causes = sorted(set(re.findall(r" - (?:\w+:)?(\w+)", tail)))
        return f"MasterNotFoundError: {head}" + (
            f" (sentinels: {', '.join(causes)})" if causes else ""
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:160].rstrip(".")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
