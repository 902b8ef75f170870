"""Memory backend: LRU bound, TTL on read and by sweep, prefix-only clear."""

from __future__ import annotations

import asyncio

import pytest

from guard_proxy.cache.backends.memory import MemoryBackend


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_get_set_delete_exists() -> None:
    mem = MemoryBackend(10)
    assert await mem.get("k") is None
    await mem.set("k", b"v", 60)
    assert await mem.get("k") == b"v"
    assert await mem.exists("k")
    assert await mem.delete("k") is True
    assert await mem.delete("k") is False
    assert not await mem.exists("k")


async def test_ttl_expires_on_read() -> None:
    clock = FakeClock()
    mem = MemoryBackend(10, clock=clock)
    await mem.set("k", b"v", 5)
    clock.now += 4.9
    assert await mem.get("k") == b"v"
    clock.now += 0.2
    assert await mem.get("k") is None
    assert len(mem) == 0
    assert mem.expirations == 1


async def test_sweep_removes_expired_entries_without_reads() -> None:
    clock = FakeClock()
    mem = MemoryBackend(20_000, clock=clock)
    for i in range(12_000):  # more than one sweep chunk
        await mem.set(f"old{i}", b"v", 1)
    await mem.set("fresh", b"v", 100)
    clock.now += 2
    assert len(mem) == 12_001
    assert await mem.sweep() == 12_000
    assert len(mem) == 1
    assert await mem.get("fresh") == b"v"


async def test_lru_eviction_at_max_size() -> None:
    mem = MemoryBackend(3)
    for key in ("a", "b", "c"):
        await mem.set(key, key.encode(), 60)
    assert await mem.get("a") == b"a"  # a is now most recently used
    await mem.set("d", b"d", 60)  # evicts b, the least recently used
    assert await mem.get("b") is None
    assert {k for k in ("a", "c", "d") if await mem.get(k)} == {"a", "c", "d"}
    assert len(mem) == 3
    assert mem.evictions == 1


async def test_overwrite_refreshes_value_and_ttl() -> None:
    clock = FakeClock()
    mem = MemoryBackend(3, clock=clock)
    await mem.set("k", b"1", 5)
    clock.now += 4
    await mem.set("k", b"2", 5)
    clock.now += 4
    assert await mem.get("k") == b"2"
    assert len(mem) == 1


async def test_clear_only_prefix() -> None:
    mem = MemoryBackend(10)
    await mem.set("guard:input:1", b"v", 60)
    await mem.set("guard:output:2", b"v", 60)
    await mem.set("other:1", b"v", 60)
    assert await mem.clear("guard:") == 2
    assert await mem.get("other:1") == b"v"


async def test_concurrent_use_keeps_bound() -> None:
    mem = MemoryBackend(50)

    async def worker(n: int) -> None:
        for i in range(200):
            await mem.set(f"k{n}:{i}", b"v", 60)
            await mem.get(f"k{n}:{i // 2}")
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(n) for n in range(10)))
    assert len(mem) == 50


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryBackend(0)


async def test_equal_small_values_are_stored_once() -> None:
    mem = MemoryBackend(10)
    first = bytes(bytearray(b'{"allowed":true,"findings":[]}'))
    second = bytes(bytearray(b'{"allowed":true,"findings":[]}'))
    assert first is not second
    await mem.set("a", first, 60)
    await mem.set("b", second, 60)
    a, b = await mem.get("a"), await mem.get("b")
    assert a == first
    assert a is b  # one shared object, not one per entry
    big = b"x" * 1000
    await mem.set("c", big, 60)
    await mem.set("d", b"x" * 1000, 60)
    assert await mem.get("c") == big
    assert await mem.get("c") is not await mem.get("d")  # large values are not shared


async def test_an_entry_does_not_keep_the_serialiser_buffer() -> None:
    """orjson 3.13's ``bytes`` each pin ~4 KB; a stored entry must cost a few hundred bytes."""
    import tracemalloc

    import orjson

    mem = MemoryBackend(5000)
    keys = [f"guard:input:{i:064x}" for i in range(2000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, key in enumerate(keys):
            await mem.set(key, orjson.dumps({"allowed": False, "findings": [["s", f"r{i}"]]}), 60)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown / 2000 < 1024, f"{grown / 2000:.0f} B per entry"
