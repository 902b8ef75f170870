"""The model threads (guard/offload.py): overlap, batching, the queue bound, the timeout."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from guard_proxy.exceptions import ScannerError
from guard_proxy.guard import Finding
from guard_proxy.guard.offload import Overloaded, ScanExecutor, default_threads, is_inline


class Gated:
    """Each call blocks on ``gate`` (releasing the GIL) and records how many run at once."""

    name = "gated"
    window = 0

    def __init__(self, batch: bool = False) -> None:
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.batches: list[int] = []
        self.started = threading.Semaphore(0)
        if batch:
            self.scan_batch = self._scan_batch

    def _call(self, texts: Sequence[str]) -> list[Finding | None]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.batches.append(len(texts))
        self.started.release()
        try:
            assert self.gate.wait(30), "the test never opened the gate"
        finally:
            with self.lock:
                self.running -= 1
        return [Finding(self.name, "bad") if "bad" in t else None for t in texts]

    def scan(self, text: str) -> Finding | None:
        return self._call([text])[0]

    def _scan_batch(self, texts: Sequence[str]) -> list[Finding | None]:
        return self._call(texts)


async def started(scanner: Gated, count: int) -> None:
    """Wait (off the loop) until ``count`` more calls have entered the scanner."""
    for _ in range(count):
        assert await asyncio.to_thread(scanner.started.acquire, True, 30)


def executor(threads: int = 4, queue: int = 64, timeout: float = 30.0) -> ScanExecutor:
    return ScanExecutor(threads=threads, queue=queue, timeout=timeout, max_batch=16)


async def test_scans_overlap_up_to_the_thread_count_and_the_loop_keeps_running() -> None:
    scanner = Gated()
    pool = executor(threads=4)
    tasks = [asyncio.ensure_future(pool.scan(scanner, f"text {i}")) for i in range(16)]
    await started(scanner, 4)
    # Four calls are inside the scanner at once and the loop still runs other work.
    assert scanner.running == 4
    assert await asyncio.sleep(0, "loop alive") == "loop alive"
    assert pool.waiting == 12
    scanner.gate.set()
    assert await asyncio.gather(*tasks) == [None] * 16
    assert scanner.peak == 4
    pool.shutdown()


async def test_texts_queued_while_threads_are_busy_go_in_one_batch() -> None:
    scanner = Gated(batch=True)
    pool = executor(threads=1)
    first = asyncio.ensure_future(pool.scan(scanner, "first"))
    await started(scanner, 1)
    rest = [asyncio.ensure_future(pool.scan(scanner, t)) for t in ("a", "bad", "c", "bad d")]
    await asyncio.sleep(0)
    scanner.gate.set()
    assert await first is None
    results = await asyncio.gather(*rest)
    assert [r is not None for r in results] == [False, True, False, True]
    assert scanner.batches == [1, 4]
    pool.shutdown()


async def test_a_full_queue_refuses_new_scans() -> None:
    scanner = Gated()
    pool = executor(threads=1, queue=2)
    running = asyncio.ensure_future(pool.scan(scanner, "running"))
    await started(scanner, 1)
    queued = [asyncio.ensure_future(pool.scan(scanner, f"q{i}")) for i in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as caught:
        await pool.scan(scanner, "one too many")
    assert caught.value.retry_after >= 1
    assert pool.shed == 1
    scanner.gate.set()
    assert await asyncio.gather(running, *queued) == [None, None, None]
    pool.shutdown()


async def test_a_scan_that_takes_too_long_is_a_scanner_error_and_its_result_is_dropped() -> None:
    scanner = Gated()
    pool = executor(threads=1, timeout=0.05)
    with pytest.raises(ScannerError, match=r"gated.*timed out after 0\.05s"):
        await pool.scan(scanner, "bad")
    assert pool.timeouts == 1
    # A text queued behind it and given up on is skipped, not scanned.
    with pytest.raises(ScannerError, match="timed out"):
        await pool.scan(scanner, "skipped")
    scanner.gate.set()
    pool.timeout = 30.0
    assert await pool.scan(scanner, "bad") == Finding("gated", "bad")
    assert scanner.batches == [1, 1]
    pool.shutdown()


class Raising:
    name = "raising"
    window = 0

    def scan(self, text: str) -> Finding | None:
        raise RuntimeError(f"cannot handle {text}")


class ShortBatch:
    name = "short"
    window = 0

    def scan(self, text: str) -> Finding | None:
        return None

    def scan_batch(self, texts: Sequence[str]) -> list[Finding | None]:
        return []


async def test_scanner_failures_name_the_scanner_never_the_text() -> None:
    pool = executor()
    with pytest.raises(ScannerError) as caught:
        await pool.scan(Raising(), "secret text")
    assert "raising" in str(caught.value) and "RuntimeError" in str(caught.value)
    assert "secret" not in str(caught.value)
    with pytest.raises(ScannerError, match="scan_batch returned 0 results for 1 texts"):
        await pool.scan(ShortBatch(), "x")
    pool.shutdown()


def test_only_a_scanner_that_says_so_is_inline() -> None:
    assert not is_inline(Raising())
    inline = Raising()
    inline.inline = True  # type: ignore[attr-defined]
    assert is_inline(inline)
    assert default_threads(1) >= default_threads(64) == 1
