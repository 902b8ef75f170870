"""The backend contract.

A backend stores opaque ``bytes`` values under ``str`` keys with a TTL in seconds. Every
method may raise :class:`~guard_proxy.exceptions.CacheBackendError` or one of its subclasses
(``AuthFailed``, ``PoolTimeout``, ``CommandRejected``, all in :mod:`guard_proxy.exceptions`)
and nothing else; the facade decides what a failure means. The facade owns the backend and
calls :meth:`CacheBackend.aclose` once; a closed backend is not used again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from guard_proxy.exceptions import CacheBackendError

__all__ = ["CacheBackend", "CacheBackendError"]


class CacheBackend(ABC):
    """Key/value storage for serialised verdicts."""

    name: str = "base"

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: int) -> None:
        """Store ``value`` for ``ttl`` seconds (>= 1), replacing any previous value."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when it existed."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """True when ``key`` holds an unexpired value."""

    @abstractmethod
    async def clear(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix`` and nothing else; returns the count."""

    @abstractmethod
    async def ping(self) -> float:
        """Round-trip time in seconds of a no-op, raising when the backend does not answer."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and tasks. Default: nothing to release."""
