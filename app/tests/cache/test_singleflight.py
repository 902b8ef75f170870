"""Single-flight: one execution per key for concurrent callers; errors and cancels shared right."""

from __future__ import annotations

import asyncio

import pytest

from guard_proxy.cache.singleflight import SingleFlight


async def test_concurrent_calls_share_one_execution() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    tasks = [asyncio.create_task(flight.do("k", work)) for _ in range(20)]
    await asyncio.sleep(0)
    assert len(flight) == 1
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert [r for r, _ in results] == [42] * 20
    assert sum(1 for _, shared in results if not shared) == 1
    assert len(flight) == 0


async def test_different_keys_run_separately() -> None:
    flight: SingleFlight[str] = SingleFlight()

    async def work(value: str) -> str:
        await asyncio.sleep(0)
        return value

    results = await asyncio.gather(
        flight.do("a", lambda: work("a")), flight.do("b", lambda: work("b"))
    )
    assert list(results) == [("a", False), ("b", False)]


async def test_exception_reaches_every_waiter_and_is_not_remembered() -> None:
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()

    async def boom() -> int:
        await release.wait()
        raise RuntimeError("scanner failed")

    tasks = [asyncio.create_task(flight.do("k", boom)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

    async def fine() -> int:
        return 1

    assert await flight.do("k", fine) == (1, False)


async def test_cancelled_leader_hands_over_to_a_waiter() -> None:
    flight: SingleFlight[str] = SingleFlight()
    started = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(3600)
        return "never"

    async def quick() -> str:
        nonlocal calls
        calls += 1
        return "done"

    leader = asyncio.create_task(flight.do("k", slow))
    await started.wait()
    follower = asyncio.create_task(flight.do("k", quick))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await follower == ("done", False)
    assert calls == 2


async def test_cancelled_waiter_does_not_cancel_leader() -> None:
    flight: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "ok"

    leader = asyncio.create_task(flight.do("k", work))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(flight.do("k", work))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    assert await leader == ("ok", False)
