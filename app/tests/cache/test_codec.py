"""The cache stores bytes and a codec says what they mean: JSON_OBJECTS, and any caller's own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from guard_proxy_testing.caches import CacheFactory

from guard_proxy.cache.codec import JSON_OBJECTS


def test_json_objects_round_trip_into_new_objects() -> None:
    raw = JSON_OBJECTS.encode({"allowed": True, "findings": [["a", "b"]]})
    assert raw == b'{"allowed":true,"findings":[["a","b"]]}'
    first, second = JSON_OBJECTS.decode(raw), JSON_OBJECTS.decode(raw)
    assert first == second == {"allowed": True, "findings": [["a", "b"]]}
    assert first is not second


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b"null", b""])
def test_json_objects_decode_anything_else_to_none(raw: bytes) -> None:
    assert JSON_OBJECTS.decode(raw) is None


def test_json_objects_refuse_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        JSON_OBJECTS.encode({"bad": object()})


@dataclass(frozen=True)
class Word:
    text: str


class WordCodec:
    """Stores ``w:<text>``; anything else is not a word."""

    def __init__(self) -> None:
        self.decoded = 0

    def encode(self, value: Word, /) -> bytes:
        if not value.text:
            raise ValueError("empty word")
        return b"w:" + value.text.encode()

    def decode(self, raw: bytes, /) -> Word | None:
        self.decoded += 1
        return Word(raw[2:].decode()) if raw.startswith(b"w:") else None


async def test_get_or_compute_with_a_codec_stores_its_bytes(make_cache: CacheFactory) -> None:
    cache = await make_cache(backend="memory")
    codec = WordCodec()
    key = cache.key("input", "cfg", "x")

    async def compute() -> Word:
        return Word("hello")

    assert await cache.get_or_compute(key, compute, codec) == (Word("hello"), "miss")
    assert await cache.memory.get(key) == b"w:hello"
    assert await cache.get_or_compute(key, compute, codec) == (Word("hello"), "hit")
    assert codec.decoded == 1


async def test_bytes_the_codec_cannot_read_are_a_miss_and_overwritten(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache(backend="memory")
    key = cache.key("input", "cfg", "x")
    await cache.memory.set(key, b"garbage", 60)

    async def compute() -> Word:
        return Word("fresh")

    assert await cache.get_or_compute(key, compute, WordCodec()) == (Word("fresh"), "miss")
    assert await cache.memory.get(key) == b"w:fresh"
    stats = await cache.stats()
    assert (stats.hits, stats.misses, stats.sets) == (0, 1, 1)


async def test_a_value_the_codec_cannot_encode_is_returned_not_stored(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache(backend="memory")
    key = cache.key("input", "cfg", "x")

    async def compute() -> Word:
        return Word("")

    assert await cache.get_or_compute(key, compute, WordCodec()) == (Word(""), "miss")
    assert await cache.memory.get(key) is None
    assert (await cache.stats()).sets == 0


async def test_waiters_decode_their_own_copy_of_the_stored_bytes(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache(backend="memory")
    codec = WordCodec()
    key = cache.key("input", "cfg", "x")
    release = asyncio.Event()

    async def compute() -> Word:
        await release.wait()
        return Word("shared")

    tasks = [asyncio.create_task(cache.get_or_compute(key, compute, codec)) for _ in range(4)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks)
    assert sorted(outcome for _, outcome in results) == ["hit", "hit", "hit", "miss"]
    assert {value for value, _ in results} == {Word("shared")}
    assert codec.decoded == 3  # one per waiter; the leader keeps what it computed


async def test_a_memory_hit_while_the_key_is_computed_still_waits_for_the_computation(
    make_cache: CacheFactory,
) -> None:
    # A memory hit skips the single-flight only when nobody is computing the key.
    cache = await make_cache(backend="memory")
    codec = WordCodec()
    key = cache.key("input", "cfg", "x")
    release = asyncio.Event()

    async def compute() -> Word:
        await release.wait()
        return Word("computed")

    leader = asyncio.create_task(cache.get_or_compute(key, compute, codec))
    await asyncio.sleep(0.01)
    assert key in cache._flight
    await cache.memory.set(key, b"w:planted", 60)
    waiter = asyncio.create_task(cache.get_or_compute(key, compute, codec))
    await asyncio.sleep(0.01)
    release.set()
    assert await leader == (Word("computed"), "miss")
    assert await waiter == (Word("computed"), "hit")
    assert key not in cache._flight
    assert await cache.get_or_compute(key, compute, codec) == (Word("computed"), "hit")
    stats = await cache.stats()
    assert (stats.misses, stats.coalesced, stats.memory_hits, stats.hits) == (
        1,
        1,
        1,
        2,
    )
