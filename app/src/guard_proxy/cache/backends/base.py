"""The backend contract, as protocols the facade is typed against.

A backend stores opaque ``bytes`` values under ``str`` keys with a TTL in seconds. Every
method may raise :class:`~guard_proxy.exceptions.CacheBackendError` or one of its subclasses
(``AuthFailed``, ``PoolTimeout``, ``CommandRejected``, all in :mod:`guard_proxy.exceptions`)
and nothing else; the facade decides what a failure means. The facade owns the backend and
calls :meth:`CacheBackend.aclose` once; a closed backend is not used again.

Two roles build on the contract: the :class:`LocalBackend` (level 1, in this process: the
memory LRU, swept in the background) and the :class:`SharedBackend` (level 2, shared by every
instance: Redis, supervised by a breaker). :class:`~.memory.MemoryBackend` and
:class:`~.redis.RedisBackend` subclass them explicitly, so mypy checks they keep to them.
"""

from __future__ import annotations

from typing import Protocol, TypedDict

from guard_proxy.exceptions import CacheBackendError

__all__ = ["CacheBackend", "CacheBackendError", "LocalBackend", "RedisMemoryInfo", "SharedBackend"]


class RedisMemoryInfo(TypedDict):
    """From INFO memory; each None when the server does not say (INFO refused by an ACL)."""

    used_memory: int | None
    maxmemory: int | None
    maxmemory_policy: str | None


class CacheBackend(Protocol):
    """Key/value storage for opaque bytes."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store ``value`` for ``ttl`` seconds (>= 1), replacing any previous value."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""
        ...

    async def exists(self, key: str) -> bool:
        """True when ``key`` holds an unexpired value."""
        ...

    async def clear(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix`` and nothing else; returns the count."""
        ...

    async def ping(self) -> float:
        """Round-trip time in seconds of a no-op, raising when the backend does not answer."""
        ...

    async def aclose(self) -> None:
        """Release connections and tasks. Default: nothing to release."""
        return None


class LocalBackend(CacheBackend, Protocol):
    """Level 1: bounded, in this process, never failing; expired entries swept in the background."""

    max_size: int
    evictions: int

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """As :meth:`CacheBackend.set`, and a fraction of a second is kept (a copy of a level-2
        value lives no longer than the level-2 key)."""
        ...

    def __len__(self) -> int:
        """Entries held, including expired ones not yet swept."""
        ...

    async def sweep(self) -> int:
        """Drop expired entries; returns the count."""
        ...


class SharedBackend(CacheBackend, Protocol):
    """Level 2: shared between instances, may fail; the supervisor's breaker guards it."""

    @property
    def address(self) -> str:
        """``host:port/db`` of the server in use, for reports; never credentials."""
        ...

    @property
    def endpoint(self) -> str:
        """``host:port`` of the server in use, short, for status lines."""
        ...

    async def get_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        """The value and its remaining TTL in seconds (None: no expiry or unknown)."""
        ...

    async def reset(self) -> None:
        """Drop every pooled connection: the next call connects afresh."""
        ...

    async def info(self) -> RedisMemoryInfo:
        """The server's memory figures for ``/cache/stats``."""
        ...

    async def count_keys(self, prefix: str) -> tuple[int, bool]:
        """Keys under ``prefix``, bounded in cost: ``(count, complete)``."""
        ...
