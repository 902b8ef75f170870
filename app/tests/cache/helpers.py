"""Helpers for cache tests: wait for a state, and run steady traffic that records failures."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guard_proxy.cache import GuardCache


async def eventually(condition: Callable[[], bool], *, within: float = 15.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds (a hang guard only)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition did not become true")
        await asyncio.sleep(0.01)


@dataclass
class Traffic:
    """Requests against a cache in a loop: every outcome and every exception is kept."""

    cache: GuardCache
    keys: int = 20
    outcomes: list[str] = field(default_factory=list)
    backends: set[str] = field(default_factory=set)
    failures: list[BaseException] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, workers: int = 4) -> Traffic:
        for n in range(workers):
            self._tasks.append(asyncio.create_task(self._run(n)))
        return self

    async def _run(self, worker: int) -> None:
        for i in itertools.count():
            if self._stop.is_set():
                return
            key = self.cache.key("input", "cfg", f"prompt {(i + worker) % self.keys}")

            async def compute(i: int = i) -> dict[str, Any]:
                return {"allowed": True, "n": i}

            try:
                _, outcome = await self.cache.get_or_compute(key, compute)
                self.outcomes.append(outcome)
                self.backends.add(self.cache.active_backend)
            except BaseException as exc:
                self.failures.append(exc)
            await asyncio.sleep(0.001)

    async def served(self, n: int) -> None:
        """Wait until ``n`` more requests have completed."""
        target = len(self.outcomes) + n
        await eventually(lambda: len(self.outcomes) >= target or bool(self.failures))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
