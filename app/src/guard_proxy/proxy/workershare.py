"""``/cache/stats`` across worker processes (``server.workers`` > 1).

A request for ``/cache/stats`` lands on one worker, chosen by the kernel. So that it still
describes the whole service, every worker publishes its cache counters into a directory the
supervisor created for this service (private, mode 0700, named in
``$GUARD_PROXY_WORKER_DIR``) about every :data:`PUBLISH_EVERY` seconds, and the asked
worker adds its own fresh numbers to the others': the integer counters summed,
``hit_rate`` recomputed, the Redis section and the backend of the asked worker, plus
``workers`` (how many answered) and ``per_worker`` (pid, backend, breaker, hits, misses,
memory entries of each). Another worker's numbers are at most about a second old. Files are
written whole (temp file, then rename), so a reader never sees half a snapshot.

``/metrics`` needs none of this: it is prometheus_client's multiprocess mode
(:mod:`guard_proxy.proxy.metrics`); the same loop refreshes each worker's gauges there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["DIR_ENV", "PUBLISH_EVERY", "WORKER_ENV", "WorkerShare", "merge_stats"]

logger = logging.getLogger("guard_proxy.proxy")

DIR_ENV = "GUARD_PROXY_WORKER_DIR"
WORKER_ENV = "GUARD_PROXY_WORKER"
PUBLISH_EVERY = 1.0
"""Seconds between two snapshots of a worker."""

# Integers of the cache stats that are not counts of events (not summed).
_NOT_SUMMED = frozenset({"memory_max_size", "pid"})
_PER_WORKER = ("active_backend", "breaker_state", "hits", "misses", "memory_entries")

Snapshot = Callable[[], Awaitable[dict[str, Any]]]
"""This worker's cache counters now (refreshing its metrics on the way)."""


def merge_stats(own: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """``own`` (the scraped worker's full stats) with the other workers' counters added."""
    merged = dict(own)
    for other in others:
        for key, value in other.items():
            if key in _NOT_SUMMED or isinstance(value, bool) or not isinstance(value, int):
                continue
            current = merged.get(key)
            if isinstance(current, int) and not isinstance(current, bool):
                merged[key] = current + value
        for key in ("last_failover_at", "last_recovery_at"):
            theirs, ours = other.get(key), merged.get(key)
            if isinstance(theirs, int | float) and (ours is None or theirs > ours):
                merged[key] = theirs
    hits, misses = merged.get("hits"), merged.get("misses")
    if isinstance(hits, int) and isinstance(misses, int):
        merged["hit_rate"] = round(hits / (hits + misses), 4) if hits + misses else 0.0
    return merged


class WorkerShare:
    """One worker's side of the shared snapshot directory.

    **Parameters:**

    * **directory** - the supervisor's directory (``$GUARD_PROXY_WORKER_DIR``).
    * **worker** - this worker's number (``$GUARD_PROXY_WORKER``), stable across restarts.
    """

    def __init__(self, directory: str | os.PathLike[str], worker: str) -> None:
        self.dir = Path(directory)
        self.worker = worker
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WorkerShare | None:
        """The share named by the environment, or None when this process is not a worker."""
        env = os.environ if environ is None else environ
        directory, worker = env.get(DIR_ENV, ""), env.get(WORKER_ENV, "")
        return cls(directory, worker) if directory and worker else None

    @staticmethod
    def remove(directory: str | os.PathLike[str], worker: str) -> None:
        """Forget a worker's snapshot (the supervisor calls this when the worker died)."""
        with contextlib.suppress(FileNotFoundError):
            (Path(directory) / f"worker-{worker}.json").unlink()

    def _path(self, worker: str, suffix: str) -> Path:
        return self.dir / f"worker-{worker}{suffix}"

    def _write(self, suffix: str, data: bytes) -> None:
        target = self._path(self.worker, suffix)
        temp = target.with_name(f".{target.name}.{os.getpid()}")
        temp.write_bytes(data)
        os.replace(temp, target)

    def publish(self, stats: dict[str, Any]) -> None:
        """Write this worker's snapshot (its cache counters)."""
        self._write(".json", orjson.dumps({**stats, "pid": os.getpid()}))

    def _others(self, suffix: str) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for path in self.dir.glob(f"worker-*{suffix}"):
            worker = path.name[len("worker-") : -len(suffix)]
            if worker == self.worker:
                continue
            with contextlib.suppress(FileNotFoundError):
                found[worker] = path.read_bytes()
        return found

    def merged_stats(self, own: dict[str, Any]) -> dict[str, Any]:
        """This worker's fresh cache stats with the other workers' counters added."""
        others: dict[str, dict[str, Any]] = {}
        for worker, data in self._others(".json").items():
            with contextlib.suppress(ValueError):
                doc = orjson.loads(data)
                if isinstance(doc, dict):
                    others[worker] = doc
        merged = merge_stats(own, list(others.values()))
        everyone = {**others, self.worker: {**own, "pid": os.getpid()}}
        merged["workers"] = len(everyone)
        merged["worker"] = self.worker
        merged["per_worker"] = [
            {"worker": w, "pid": doc.get("pid"), **{k: doc.get(k) for k in _PER_WORKER}}
            for w, doc in sorted(everyone.items(), key=lambda kv: _order(kv[0]))
        ]
        return merged

    def start(self, snapshot: Snapshot) -> None:
        """Publish ``await snapshot()`` now and every :data:`PUBLISH_EVERY` seconds."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(snapshot), name="worker-share")

    async def publish_now(self, snapshot: Snapshot) -> None:
        """Publish one snapshot now (before ``READY``: the first scrape sees every worker)."""
        self.publish(await snapshot())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, snapshot: Snapshot) -> None:
        while True:
            try:
                await self.publish_now(snapshot)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the publisher die; the next round tries again
                logger.debug("worker share: publishing failed", exc_info=True)
            await asyncio.sleep(PUBLISH_EVERY)


def _order(worker: str) -> tuple[int, str]:
    return (int(worker), "") if worker.isdigit() else (1 << 30, worker)
