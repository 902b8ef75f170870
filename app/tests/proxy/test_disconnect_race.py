"""run_until_disconnect without a server: result, departed client, and foreign cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from guard_proxy.proxy.asgi import ClientDisconnected
from guard_proxy.proxy.disconnect import run_until_disconnect

Message = MutableMapping[str, Any]


def _receive(gone: asyncio.Event) -> Any:
    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_result_when_the_work_finishes_first() -> None:
    async def work() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await run_until_disconnect(_receive(asyncio.Event()), work()) == "done"
    await asyncio.sleep(0.01)  # a late watcher callback must not cancel this task
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_departed_client_cancels_the_work() -> None:
    gone = asyncio.Event()
    closed = asyncio.Event()

    async def work() -> None:
        try:
            gone.set()
            await asyncio.sleep(30)
        finally:
            closed.set()  # where the upstream response is closed

    with pytest.raises(ClientDisconnected):
        await run_until_disconnect(_receive(gone), work())
    assert closed.is_set()
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_foreign_cancellation_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.ensure_future(run_until_disconnect(_receive(asyncio.Event()), work()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
