"""Incremental scanning of a streamed answer, with overlapping windows and a match-aware hold-back.

Each :meth:`StreamGuard.feed` scans only the new text plus, for each scanner, the last
``window - 1`` characters before it, so a term split across chunks is caught and the total
work is linear in the length of the stream. What may be sent stops where the earliest
candidate begins that more text could still turn into a finding (a scanner with
:meth:`~guard_proxy.guard.types.HoldScanner.hold` says where; any other scanner holds its last
``window - 1`` characters), so no character of a blocked finding is ever sent and prose that
cannot become a finding is sent at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guard_proxy.exceptions import ScannerError
from guard_proxy.guard.types import ALLOWED, Finding, Scanner, Verdict

CONTEXT = 16
"""Characters kept before the overlap for look-behinds (``scan_from`` sees them as context)."""


def call_scanner(scanner: Scanner, method: Any, *args: Any) -> Finding | None:
    """Run one scanner call; any exception becomes a :class:`ScannerError` without the text."""
    result: Finding | None = call(scanner, method, *args)
    return result


def call(scanner: Scanner, method: Any, *args: Any) -> Any:
    """Run one scanner method; any exception becomes a :class:`ScannerError` without the text."""
    try:
        return method(*args)
    except Exception as exc:
        raise _failed(scanner, exc) from None


def _failed(scanner: Scanner, exc: Exception) -> ScannerError:
    """``exc`` raised by ``scanner`` as a :class:`ScannerError` naming it, without the text."""
    if isinstance(exc, ScannerError):
        return ScannerError(scanner.name, str(exc).partition(": ")[2] or "failed")
    return ScannerError(scanner.name, f"raised {type(exc).__name__}")


def _held(scanner: Scanner, hold: Any, buf: str, base: int, since: int, floor: int) -> int:
    """Where ``scanner`` holds from (from the stream start): its optional ``hold`` answer,
    never before ``floor`` (the fixed window, also the answer without ``hold``)."""
    if hold is None:
        return floor
    pos = hold(buf, since)
    if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos <= len(buf):
        raise ScannerError(scanner.name, f"hold() returned {type(pos).__name__}, not an index")
    return base + pos if base + pos > floor else floor


class StreamGuard:
    """Scans one streamed text chunk by chunk.

    ``feed`` returns the verdict so far and ``releasable``, the number of characters from the
    start of the stream that may now be sent: everything before the earliest candidate that
    some scanner still holds open, and never less than ``total - holdback``. Once blocked,
    the verdict stays blocked and ``releasable`` never grows. A scanner with ``window == 0``
    (other than ``size``, which only counts) needs the whole text, so nothing is releasable
    before ``finish``.
    """

    __slots__ = (
        "_final",
        "_finished",
        "_holding",
        "_keep",
        "_length",
        "_opened",
        "_parts",
        "_plain",
        "_range",
        "_released",
        "_tail",
        "_verdict",
        "_whole",
        "holdback",
        "total",
    )

    def __init__(self, scanners: Sequence[Scanner]) -> None:
        self._length: list[tuple[Scanner, Any]] = []
        # (index into _opened, scanner, method(s), window). _holding: the built-ins, whose
        # scan_hold(text, start, since) is scan_from + hold in one pass (PatternScanner);
        # _range: scan_from and an optional hold; _plain: scan and an optional hold.
        self._holding: list[tuple[int, Scanner, Any, int]] = []
        self._range: list[tuple[int, Scanner, Any, Any, int]] = []
        self._plain: list[tuple[int, Scanner, Any, Any, int]] = []
        self._whole: list[Scanner] = []
        windows: list[int] = []
        for s in scanners:
            if callable(getattr(s, "check_length", None)):
                self._length.append((s, s.check_length))  # type: ignore[attr-defined]
                continue
            if s.window <= 0:
                self._whole.append(s)
                continue
            i = len(windows)
            windows.append(s.window)
            hold = getattr(s, "hold", None)
            hold = hold if callable(hold) else None
            scan_hold = getattr(s, "scan_hold", None)
            scan_from = getattr(s, "scan_from", None)
            if callable(scan_hold) and callable(scan_from):
                self._holding.append((i, s, scan_hold, s.window))
            elif callable(scan_from):
                self._range.append((i, s, scan_from, hold, s.window))
            else:
                self._plain.append((i, s, s.scan, hold, s.window))
        # Scanners that defer a match until they see what follows it: judged at the end.
        self._final = [(s, s.scan_from, w) for _, s, _, w in self._holding]  # type: ignore[attr-defined]
        self._final += [(s, scan_from, w) for _, s, scan_from, _, w in self._range]
        widest = max(windows, default=0)
        self.holdback = max(widest - 1, 0)
        """The most a stream ever holds back: the longest window - 1 characters."""
        # The tail keeps the widest overlap plus some context for look-behinds.
        self._keep = widest - 1 + CONTEXT if widest else 0
        # Per windowed scanner: where its earliest open candidate begins (from stream start).
        self._opened = [0] * len(windows)
        self._tail = ""
        self._parts: list[str] | None = [] if self._whole else None
        self.total = 0
        self._released = 0
        self._verdict = ALLOWED
        self._finished = False

    @property
    def verdict(self) -> Verdict:
        """The verdict so far."""
        return self._verdict

    @property
    def held(self) -> int:
        """Characters fed but not yet releasable."""
        return self.total - self._released

    def feed(self, text: str) -> tuple[Verdict, int]:
        """Append ``text`` and scan it; return ``(verdict, releasable)``."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not self._verdict.allowed or not text:
            return self._verdict, self._released
        prev = len(self._tail)
        buf = self._tail + text
        base = self.total - prev  # where buf starts in the stream
        self.total += len(text)
        current: list[Scanner] = []  # the scanner being called, to name it in an error
        try:
            findings, keep = self._scan(buf, prev, base, current)
        except Exception as exc:
            raise _failed(current[-1], exc) from None
        if self._parts is not None:
            self._parts.append(text)
        self._tail = buf[-self._keep :] if self._keep else ""
        if findings:
            self._verdict = Verdict(False, tuple(findings))
        elif self._parts is None and keep > self._released:
            self._released = keep
        return self._verdict, self._released

    def _scan(
        self, buf: str, prev: int, base: int, current: list[Scanner]
    ) -> tuple[list[Finding], int]:
        """Run every scanner on the new end of ``buf``; the findings and the first character
        that must still be held (from the stream start)."""
        total = self.total
        keep = total
        opened = self._opened
        findings: list[Finding] = []
        note = current.append
        for s, check in self._length:
            note(s)
            f = check(total)
            if f is not None:
                findings.append(f)
        for i, s, scan_hold, w in self._holding:
            note(s)
            start = prev - w + 1
            start = start if start > 0 else 0
            since = opened[i] - base
            f, at = scan_hold(buf, start, since if since > start else start)
            if f is not None:
                findings.append(f)
            at += base
            floor = total - w + 1  # never hold more than the window
            opened[i] = at = at if at > floor else floor
            if at < keep:
                keep = at
        for i, s, scan_from, hold, w in self._range:
            note(s)
            start = prev - w + 1
            start = start if start > 0 else 0
            f = scan_from(buf, start, False)
            if f is not None:
                findings.append(f)
            opened[i] = at = _held(s, hold, buf, base, max(opened[i] - base, start), total - w + 1)
            if at < keep:
                keep = at
        for i, s, scan, hold, w in self._plain:
            note(s)
            start = prev - w + 1
            start = start if start > 0 else 0
            f = scan(buf[start:] if start else buf)
            if f is not None:
                findings.append(f)
            opened[i] = at = _held(s, hold, buf, base, max(opened[i] - base, start), total - w + 1)
            if at < keep:
                keep = at
        return findings, keep

    def feed_many(self, texts: Sequence[str]) -> tuple[Verdict, int]:
        """Feed several chunks with one scan; the result is the same as feeding them in turn.

        When the joined text is blocked, the chunks are scanned again one by one from the
        state before the call, so ``releasable`` is what chunk-by-chunk feeding would give
        (the text before the chunk that completes the finding can still be released).
        """
        if len(texts) == 1 or not self._verdict.allowed or self._finished:
            return self.feed("".join(texts))
        saved = (self._tail, self.total, self._released, len(self._parts or ()))
        opened = list(self._opened)
        verdict, releasable = self.feed("".join(texts))
        if verdict.allowed:
            return verdict, releasable
        self._tail, self.total, self._released, parts = saved
        self._opened = opened
        if self._parts is not None:
            del self._parts[parts:]
        self._verdict = ALLOWED
        for text in texts:
            verdict, releasable = self.feed(text)
            if not verdict.allowed:
                break
        return verdict, releasable

    def finish(self) -> tuple[Verdict, int]:
        """End of stream: run the final checks; when allowed, everything is releasable."""
        if self._finished or not self._verdict.allowed:
            self._finished = True
            return self._verdict, self._released
        self._finished = True
        findings: list[Finding] = []
        tail = self._tail
        for s, check in self._length:
            f = call_scanner(s, check, self.total)
            if f is not None:
                findings.append(f)
        for s, scan_from, w in self._final:
            start = len(tail) - w + 1
            f = call_scanner(s, scan_from, tail, start if start > 0 else 0, True)
            if f is not None:
                findings.append(f)
        if self._parts is not None:
            whole = "".join(self._parts)
            self._parts = None
            for s in self._whole:
                f = call_scanner(s, s.scan, whole)
                if f is not None:
                    findings.append(f)
        if findings:
            self._verdict = Verdict(False, tuple(findings))
            return self._verdict, self._released
        self._released = self.total
        return self._verdict, self._released
