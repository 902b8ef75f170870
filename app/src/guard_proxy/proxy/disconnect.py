"""Race work against ``http.disconnect`` so that a departed client cancels upstream work.

Only call it once the request body has been read: from then on ``receive`` yields nothing
but ``http.disconnect``. Cancelling the work closes the upstream response in its ``finally``,
which makes Ollama stop generating.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from guard_proxy.proxy.asgi import ClientDisconnected, Receive

T = TypeVar("T")


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class _Race:
    """Cancels ``task`` when the watcher sees the client leave, unless the work is done."""

    __slots__ = ("disconnected", "done", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.done = False
        self.disconnected = False

    def watcher_done(self, watcher: asyncio.Future[None]) -> None:
        if watcher.cancelled():
            return
        watcher.exception()  # a failed receive counts as a departed client, as before
        if not self.done:
            self.disconnected = True
            self.task.cancel()


async def run_until_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it and raise ClientDisconnected.

    ``work`` runs in the calling task (no second task per request); a watcher task waits for
    ``http.disconnect`` and cancels the calling task, and this cancellation, and only this
    one, becomes :class:`ClientDisconnected`.
    """
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always called from a task under a server
        raise RuntimeError("run_until_disconnect() needs a running task")
    race = _Race(task)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    watcher.add_done_callback(race.watcher_done)
    try:
        result = await work
    except asyncio.CancelledError:
        if race.disconnected and task.uncancel() == 0:
            raise ClientDisconnected from None
        raise
    finally:
        race.done = True
        watcher.cancel()
    if race.disconnected:  # the work swallowed our cancellation
        task.uncancel()
        raise ClientDisconnected
    return result
