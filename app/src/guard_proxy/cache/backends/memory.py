"""In-process LRU with TTL: bounded by ``max_size``, expired on read and by :meth:`sweep`.

Every operation is synchronous inside (no ``await``), so it is atomic under asyncio and safe
for any number of concurrent tasks on one event loop. Values are the serialised bytes, so a
caller can never mutate a cached verdict.

Memory: a stored value is a compact copy of the caller's bytes (orjson 3.13 returns ``bytes``
that each pin a ~4 KB allocation, which made 100k entries cost ~420 MB), and small values are
shared: most verdicts are the same few bytes (``{"allowed":true,"findings":[]}``), so 100k
entries hold a handful of distinct values. An entry costs its key, a ``(expires, value)``
tuple and its ``OrderedDict`` slot: ~300 B.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from guard_proxy.cache.backends.base import LocalBackend

__all__ = ["MemoryBackend"]

_SWEEP_CHUNK = 5000
_SHARE_MAX_LEN = 256
"""Values up to this many bytes are shared between entries (verdicts are ~30-100 B)."""
_SHARE_MAX_VALUES = 4096
"""Distinct shared values kept; beyond it new values are stored as plain compact copies."""


class MemoryBackend(LocalBackend):
    """A least-recently-used map of ``key -> (expires_at, value)``.

    **Parameters:**

    * **max_size** - the most entries kept; setting one more evicts the least recently used.
    * **clock** - monotonic seconds; tests inject a fake one to expire entries without sleeping.
    """

    name = "memory"

    def __init__(self, max_size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._shared: dict[bytes, bytes] = {}
        self.evictions = 0
        self.expirations = 0

    def __len__(self) -> int:
        """Entries held, including expired ones not yet swept."""
        return len(self._data)

    def _live(self, key: str) -> tuple[float, bytes] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._data[key]
            self.expirations += 1
            return None
        return entry

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        self._data.move_to_end(key)
        return entry[1]

    def _compact(self, value: bytes) -> bytes:
        """A copy of ``value`` that owns no more memory than it needs, shared when small."""
        shared = self._shared.get(value)
        if shared is not None:
            return shared
        compact = bytes(memoryview(value))  # bytes(value) would return ``value`` itself
        if len(compact) <= _SHARE_MAX_LEN and len(self._shared) < _SHARE_MAX_VALUES:
            self._shared[compact] = compact
        return compact

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._data[key] = (self._clock() + ttl, self._compact(value))
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)
            self.evictions += 1

    async def delete(self, key: str) -> bool:
        existed = self._live(key) is not None
        self._data.pop(key, None)
        return existed

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def clear(self, prefix: str) -> int:
        doomed = [key for key in self._data if key.startswith(prefix)]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    async def ping(self) -> float:
        return 0.0

    async def sweep(self) -> int:
        """Drop expired entries, yielding to the loop between chunks; returns the count."""
        removed = 0
        keys = list(self._data)
        for start in range(0, len(keys), _SWEEP_CHUNK):
            now = self._clock()
            for key in keys[start : start + _SWEEP_CHUNK]:
                entry = self._data.get(key)
                if entry is not None and entry[0] <= now:
                    del self._data[key]
                    removed += 1
            if start + _SWEEP_CHUNK < len(keys):
                await asyncio.sleep(0)
        self.expirations += removed
        return removed
