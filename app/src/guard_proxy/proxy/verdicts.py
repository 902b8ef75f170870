"""The verdict service: the guard behind the verdict cache, with the fail mode applied.

``check(direction, texts)`` scans each text separately (so a growing conversation re-scans
only its new messages: the earlier ones are cache hits), caches each verdict under
``cache.key(direction, config_hash, text)``, and merges them. Cheap scanners run on the
event loop (large texts in a worker thread); off-loop scanners (models) run in the
:class:`~guard_proxy.guard.offload.ScanExecutor`'s threads at the same time. A scanner error
(a timeout too) blocks with 503 under ``fail_mode: closed`` and is logged and counted under
``open``, where the other scanners' findings still decide; such a verdict is not cached. A
full model queue sheds the request (``Check.shed``: 503 with ``Retry-After``).

The cache stores bytes; what a verdict looks like in them is this module's: :data:`VERDICTS`
(orjson of :meth:`Verdict.to_dict`, read back by :func:`decode_verdict`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import orjson

from guard_proxy.exceptions import ScannerError
from guard_proxy.guard import Direction, Finding, Guard, Verdict
from guard_proxy.guard.offload import Overloaded, ScanExecutor
from guard_proxy.guard.redaction import Finder
from guard_proxy.guard.types import Span
from guard_proxy.proxy.metrics import Metrics

if TYPE_CHECKING:
    from guard_proxy.cache.codec import Codec

logger = logging.getLogger("guard_proxy.guard")

# Texts longer than this are scanned off the event loop (a thread hop costs ~50 us; a scan
# of 32k characters costs a few milliseconds).
OFFLOAD_CHARS = 32_768


@dataclass(slots=True)
class Check:
    """The merged outcome of scanning some texts of one direction.

    ``cache`` is ``hit`` (every text was cached), ``miss`` (at least one was scanned),
    ``disabled`` (no cache or no active guard). ``failed``: a scanner errored under
    ``fail_mode: closed``. ``spans``: per text checked (in order, ``()`` for an empty one),
    where its values to redact are. ``shed``: the model threads' queue was full
    (``retry_after`` seconds); ``failed`` is then set too.
    """

    allowed: bool = True
    scanners: list[str] = field(default_factory=list)
    cache: str = "disabled"
    failed: bool = False
    spans: list[tuple[Span, ...]] = field(default_factory=list)
    shed: bool = False
    retry_after: int = 0

    @property
    def redacts(self) -> bool:
        """Whether any text holds a value to redact."""
        return any(self.spans)


def decode_verdict(value: object) -> Verdict:
    """A cached verdict back as a :class:`Verdict`; raises ``ValueError`` when malformed.

    Reads :meth:`Verdict.to_dict`'s form (findings as ``[scanner, reason]`` pairs) and the
    form earlier releases stored by mistake (the dataclass itself, so findings as
    ``{"scanner", "reason"}`` objects), which stays in Redis until its TTL runs out.
    """
    if not isinstance(value, dict):
        raise ValueError("malformed verdict")
    findings = value.get("findings")
    if isinstance(findings, list) and any(isinstance(f, dict) for f in findings):
        try:
            pairs = [[f["scanner"], f["reason"]] for f in findings]
        except (KeyError, TypeError) as exc:
            raise ValueError("malformed verdict") from exc
        value = {**value, "findings": pairs}
    return Verdict.from_dict(value)


class VerdictCodec:
    """Verdicts to the bytes the cache stores and back: orjson of :meth:`Verdict.to_dict`.

    ``decode`` answers None for bytes that are not a verdict (the cache then scans again and
    overwrites them); it reads the legacy form too (see :func:`decode_verdict`).
    """

    def encode(self, verdict: Verdict, /) -> bytes:
        return orjson.dumps(verdict.to_dict())

    def decode(self, raw: bytes, /) -> Verdict | None:
        try:
            return decode_verdict(orjson.loads(raw))
        except ValueError:  # orjson.JSONDecodeError is one too
            return None


VERDICTS = VerdictCodec()


class Incomplete(ScannerError):
    """Some scanners failed on a text; ``verdict`` holds the findings of the others."""

    def __init__(self, verdict: Verdict, errors: list[ScannerError]) -> None:
        self.verdict = verdict
        self.errors = errors
        super().__init__(errors[0].scanner, f"{len(errors)} scanner(s) failed")


class VerdictCache(Protocol):
    """What the service needs of the cache (:class:`guard_proxy.cache.GuardCache`)."""

    def key(self, direction: str, config_hash: str, text: str) -> str: ...

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[Verdict]], codec: Codec[Verdict], /
    ) -> tuple[Verdict, str]: ...


class VerdictService:
    """Guard + cache + fail mode. One per app.

    **Parameters:**

    * **guard** - the :class:`Guard` built from ``guard`` settings.
    * **cache** - the :class:`GuardCache`.
    * **metrics** - where scan times, blocks and scanner errors are counted.
    * **fail_mode** - ``closed`` or ``open``.
    * **finders** - per direction, the kinds redacted rather than blocked; their spans go
      into the verdicts (and so the cache). A redaction is never skipped: not under
      ``fail_mode: open`` either (a failing finder fails closed).
    * **executor** - the model threads for off-loop scanners (required when there are any).
    """

    def __init__(
        self,
        guard: Guard,
        cache: VerdictCache,
        metrics: Metrics,
        fail_mode: str,
        finders: Mapping[Direction, Finder] | None = None,
        executor: ScanExecutor | None = None,
    ) -> None:
        self.guard = guard
        self.cache = cache
        self.metrics = metrics
        self.fail_closed = fail_mode != "open"
        self.finders = {d: f for d, f in (finders or {}).items() if f and guard.enabled}
        self._active = {d: guard.active(d) or d in self.finders for d in Direction}
        self.executor = executor
        if executor is None and any(guard.offloaded(d) for d in Direction):
            raise ValueError("off-loop scanners need a ScanExecutor")
        self._hash = {d: guard.config_hash(d) for d in Direction}
        self._offloaded = {d: bool(guard.offloaded(d)) for d in Direction}

    def active(self, direction: Direction) -> bool:
        """Whether any scanner runs for ``direction``."""
        return self._active[direction]

    async def check(self, direction: Direction, texts: Sequence[str]) -> Check:
        """Scan ``texts`` (empty ones skipped) and merge the verdicts; never raises."""
        result = Check()
        if not self._active[direction]:
            return result
        start = time.perf_counter()
        statuses: list[str] = []
        nonempty = [t for t in texts if t]
        # With model scanners the texts of one request are scanned at the same time (their
        # model calls overlap in the threads); without, one after another (no task overhead).
        together = len(nonempty) > 1 and self._offloaded[direction]
        outcomes = iter(
            await asyncio.gather(
                *(self._one(direction, t) for t in nonempty), return_exceptions=True
            )
            if together
            else ()
        )
        for text in texts:
            if not text:
                result.spans.append(())
                continue
            try:
                if together:
                    outcome = next(outcomes)
                    if isinstance(outcome, BaseException):
                        raise outcome
                    verdict, status = outcome
                else:
                    verdict, status = await self._one(direction, text)
            except Overloaded as exc:
                result.allowed, result.failed, result.shed = False, True, True
                result.retry_after = exc.retry_after
                self._shed(direction, exc)
                statuses.append("miss")
                break
            statuses.append(status)
            if verdict is None:
                result.failed = True
                result.allowed = False
                break
            result.spans.append(verdict.spans)
            if not verdict.allowed:
                result.allowed = False
                for name in verdict.scanners:
                    if name not in result.scanners:
                        result.scanners.append(name)
        if statuses:
            if "miss" in statuses:
                result.cache = "miss"
            elif all(s == "hit" for s in statuses):
                result.cache = "hit"
            else:
                result.cache = statuses[0]
        if not result.allowed and not result.failed:
            self.metrics.block(direction.value, result.scanners)
        self.metrics.verdict(direction.value, time.perf_counter() - start)
        return result

    def scan_now(self, direction: Direction, text: str) -> Verdict | None:
        """Scan synchronously without the cache (stream pieces); ``None``: failed closed."""
        try:
            return self._timed_scan(direction, text)
        except ScannerError as exc:
            return self.scanner_failed(direction, exc)

    async def _one(self, direction: Direction, text: str) -> tuple[Verdict | None, str]:
        # The cache stores what VERDICTS encodes; a stored value VERDICTS cannot read back is
        # a miss (scanned again and overwritten). A scan with a failed scanner raises
        # Incomplete out of compute(), so it is never stored (nor shared as a verdict).
        async def compute() -> Verdict:
            start = time.perf_counter()
            try:
                return await self._scan(direction, text)
            finally:
                self.metrics.scan(direction.value, time.perf_counter() - start)

        try:
            key = self.cache.key(direction.value, self._hash[direction], text)
            verdict, status = await self.cache.get_or_compute(key, compute, VERDICTS)
            return verdict, str(status)
        except Incomplete as exc:
            failed: Verdict | None = exc.verdict
            for error in exc.errors:
                failed = self.scanner_failed(direction, error)
            if failed is None:
                return None, "miss"
            return exc.verdict, "miss"
        except ScannerError as exc:
            failed = self.scanner_failed(direction, exc)
            if failed is None or direction not in self.finders:
                return failed, "miss"
            # Fail open keeps the redactions: only the scanners that block are skipped.
            try:
                return Verdict(True, (), self._spans(direction, text)), "miss"
            except ScannerError:
                return None, "miss"

    def _spans(self, direction: Direction, text: str) -> tuple[Span, ...]:
        finder = self.finders.get(direction)
        if finder is None:
            return ()
        try:
            return finder.spans(text)
        except Exception as exc:
            raise ScannerError("redaction", f"raised {type(exc).__name__}") from None

    async def _scan(self, direction: Direction, text: str) -> Verdict:
        """Every scanner of ``direction`` on ``text``: the off-loop ones queued first, then
        the inline ones (large texts in a worker thread) while the models run."""
        offloaded = self.guard.offloaded(direction)
        pending: list[asyncio.Future[Finding | None]] = []
        if offloaded and self.executor is not None:
            self.executor.admit(len(offloaded))  # all or none: Overloaded sheds the request
            pending = [asyncio.ensure_future(self.executor.scan(s, text)) for s in offloaded]
        try:
            inline = self.guard.inline(direction)
            if len(text) > OFFLOAD_CHARS:
                findings, errors = await asyncio.to_thread(self.guard.scan_each, inline, text)
            else:
                findings, errors = self.guard.scan_each(inline, text)
            results = await asyncio.gather(*pending, return_exceptions=True) if pending else []
        finally:
            for task in pending:
                task.cancel()  # no-op when done; stops the scans when we were cancelled
        for r in results:
            if isinstance(r, Overloaded):
                raise r
            if isinstance(r, ScannerError):
                errors.append(r)
            elif isinstance(r, BaseException):
                raise r
            elif r is not None:
                findings.append(r)
        verdict = Verdict.of(findings)
        spans = self._spans(direction, text)  # a failing finder raises: never fails open
        if spans:
            verdict = Verdict(verdict.allowed, verdict.findings, spans)
        if errors:
            raise Incomplete(verdict, errors)
        return verdict

    def _shed(self, direction: Direction, exc: Overloaded) -> None:
        logger.warning(
            "guard busy: request shed",
            extra={"fields": {"direction": direction.value, "reason": str(exc)}},
        )

    def _timed_scan(self, direction: Direction, text: str) -> Verdict:
        start = time.perf_counter()
        try:
            verdict = self.guard.scan(direction, text)
            spans = self._spans(direction, text)
            if spans:
                verdict = Verdict(verdict.allowed, verdict.findings, spans)
            return verdict
        finally:
            self.metrics.scan(direction.value, time.perf_counter() - start)

    def scanner_failed(self, direction: Direction, exc: ScannerError) -> Verdict | None:
        """Apply the fail mode to a scanner error: count it, log it (never the text) and
        answer ``None`` under ``closed`` (block) or an allowing verdict under ``open``.

        The hook for every scanner error, including the stream guard's (see
        :class:`guard_proxy.proxy.release.Releaser`).
        """
        mode = "closed" if self.fail_closed else "open"
        self.metrics.scanner_error(direction.value, mode)
        logger.error(
            "scanner failed",
            extra={
                "fields": {
                    "direction": direction.value,
                    "scanner": exc.scanner,
                    "fail_mode": mode,
                    "error_type": type(exc.__cause__ or exc).__name__,
                }
            },
        )
        if self.fail_closed:
            return None
        return Verdict(True)
