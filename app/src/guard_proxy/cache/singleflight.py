"""Single-flight: concurrent calls for the same key share one execution.

The first caller (the leader) runs the function; callers that arrive while it runs await the
leader's outcome, result or exception. If the leader is cancelled (its client went away), the
waiting callers are not: one of them becomes the new leader and runs the function itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Per-process de-duplication of concurrent calls, keyed by string."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        """Keys currently in flight."""
        return len(self._calls)

    def __contains__(self, key: object) -> bool:
        """Whether a call for ``key`` is in flight (a new caller would wait for it)."""
        return key in self._calls

    async def do(self, key: str, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``fn`` once for all concurrent callers of ``key``. Returns ``(result, shared)``."""
        while (pending := self._calls.get(key)) is not None:
            try:
                return await asyncio.shield(pending), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and (task is None or not task.cancelling()):
                    continue  # the leader was cancelled, not us: take over
                raise

        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls[key] = future
        try:
            result = await fn()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: nobody may be waiting
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            if self._calls.get(key) is future:
                del self._calls[key]
