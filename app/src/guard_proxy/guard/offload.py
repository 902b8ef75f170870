"""Off-loop scanning: a bounded pool of model threads per worker, with micro-batching.

A scanner says what it costs: ``inline = True`` runs it on the event loop (the built-ins, a
few microseconds each); anything else is *off-loop* and goes to :class:`ScanExecutor`. Each
off-loop scanner has a queue of texts; a free model thread takes everything queued for one
scanner (at most ``max_batch`` texts) and makes one ``scan_batch`` call if the scanner has it,
else one ``scan`` per text. So batching costs no timer: texts gather while every thread is
busy and are scanned together by the next free one.

Bounds: at most ``queue`` texts wait for a thread (a new one is refused with
:class:`Overloaded`: the route answers 503 with ``Retry-After``), and a caller waits at most
``timeout`` seconds for one scanner's answer, queue included (then :class:`ScannerError`,
which ``guard.fail_mode`` decides about). A scan that timed out still finishes in its thread
(threads cannot be stopped); its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from guard_proxy.exceptions import GuardError, ScannerError
from guard_proxy.guard.types import Finding, Scanner

__all__ = ["Overloaded", "ScanExecutor", "default_threads", "is_inline"]


class Overloaded(GuardError):
    """Too many texts already wait for a model thread; ``retry_after`` in whole seconds."""

    def __init__(self, waiting: int, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(f"{waiting} scans already wait for a model thread")


def is_inline(scanner: Scanner) -> bool:
    """Whether ``scanner`` runs on the event loop: only when it says ``inline = True``."""
    return getattr(scanner, "inline", False) is True


def default_threads(workers: int) -> int:
    """``guard.model_threads: 0``: the CPUs this process may use, shared by ``workers``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, workers))


class _Job:
    """One text waiting for (or in) a model thread, and the future its caller awaits."""

    __slots__ = ("future", "text")

    def __init__(self, text: str, future: asyncio.Future[Finding | None]) -> None:
        self.text = text
        self.future = future


class ScanExecutor:
    """The model threads of one worker process.

    **Parameters:**

    * **threads** - model threads (``guard.model_threads``).
    * **queue** - the most texts that may wait for a thread (``guard.scan_queue``).
    * **timeout** - seconds a caller waits for one scanner (``guard.scan_timeout``).
    * **max_batch** - the most texts one ``scan_batch`` call gets (``guard.max_batch``).
    """

    def __init__(self, *, threads: int, queue: int, timeout: float, max_batch: int) -> None:
        self.threads = threads
        self.queue = queue
        self.timeout = timeout
        self.max_batch = max_batch
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="guard-model")
        self._lock = threading.Lock()
        self._queued: dict[int, deque[_Job]] = {}
        self.waiting = 0
        """Texts queued for a thread now (read on the loop; updated under the lock)."""
        self.running = 0
        """Texts being scanned in a thread now."""
        self.shed = 0
        """Scans refused because the queue was full."""
        self.timeouts = 0
        """Scans whose caller stopped waiting after ``timeout``."""
        self.batches = 0
        """``scan_batch`` or ``scan`` calls made by the threads (one per batch)."""

    def admit(self, count: int) -> None:
        """Raise :class:`Overloaded` unless ``count`` more texts fit in the queue."""
        if self.waiting + count > self.queue:
            self.shed += 1
            raise Overloaded(self.waiting)

    async def scan(self, scanner: Scanner, text: str) -> Finding | None:
        """``scanner``'s finding for ``text``, computed in a model thread.

        Raises :class:`Overloaded` when the queue is full and :class:`ScannerError` when the
        scanner raised or did not answer within ``timeout``.
        """
        self.admit(1)
        loop = asyncio.get_running_loop()
        job = _Job(text, loop.create_future())
        with self._lock:
            self._queued.setdefault(id(scanner), deque()).append(job)
            self.waiting += 1
        self._pool.submit(self._drain, scanner, loop)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), self.timeout)
        except TimeoutError:
            self.timeouts += 1
            raise ScannerError(scanner.name, f"timed out after {self.timeout:g}s") from None
        finally:
            if not job.future.done():
                job.future.cancel()  # a thread that has not taken it yet skips it

    def _take(self, scanner: Scanner) -> list[_Job]:
        """Up to ``max_batch`` jobs queued for ``scanner`` whose callers still wait."""
        limit = self.max_batch if callable(getattr(scanner, "scan_batch", None)) else 1
        taken: list[_Job] = []
        with self._lock:
            queued = self._queued.get(id(scanner))
            while queued and len(taken) < limit:
                job = queued.popleft()
                self.waiting -= 1
                if not job.future.cancelled():
                    taken.append(job)
            self.running += len(taken)
        return taken

    def _drain(self, scanner: Scanner, loop: asyncio.AbstractEventLoop) -> None:
        """Thread body: scan what is queued for ``scanner`` (maybe nothing: taken already)."""
        jobs = self._take(scanner)
        if not jobs:
            return
        try:
            self.batches += 1
            results = _run(scanner, [job.text for job in jobs])
        except Exception as exc:
            error = _failed(scanner, exc)
            for job in jobs:
                _settle(loop, job.future, error=error)
        else:
            for job, result in zip(jobs, results, strict=True):
                _settle(loop, job.future, result=result)
        finally:
            with self._lock:
                self.running -= len(jobs)

    def shutdown(self) -> None:
        """Stop taking work; scans running in threads are not waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _run(scanner: Scanner, texts: list[str]) -> Sequence[Finding | None]:
    """One batch: ``scan_batch(texts)`` (checked to answer one result per text) or ``scan``."""
    scan_batch: Any = getattr(scanner, "scan_batch", None)
    if callable(scan_batch):
        results = list(scan_batch(texts))
        if len(results) != len(texts):
            raise ScannerError(
                scanner.name, f"scan_batch returned {len(results)} results for {len(texts)} texts"
            )
        for r in results:
            if r is not None and not isinstance(r, Finding):
                raise ScannerError(scanner.name, f"returned {type(r).__name__}, not Finding")
        return results
    return [scanner.scan(texts[0])]


def _failed(scanner: Scanner, exc: Exception) -> ScannerError:
    if isinstance(exc, ScannerError):
        return ScannerError(scanner.name, str(exc).partition(": ")[2] or "failed")
    return ScannerError(scanner.name, f"raised {type(exc).__name__}")


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Finding | None],
    *,
    result: Finding | None = None,
    error: ScannerError | None = None,
) -> None:
    """Hand a thread's outcome to the loop (a loop already closed at shutdown is ignored)."""

    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop closed while the scan ran
        loop.call_soon_threadsafe(settle)
