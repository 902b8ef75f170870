"""Incremental scanning of a streamed answer, with overlapping windows and a hold-back.

Each :meth:`StreamGuard.feed` scans only the new text plus, for each scanner, the last
``window - 1`` characters before it, so a term split across chunks is caught and the total
work is linear in the length of the stream. The last ``holdback`` characters are never
releasable before :meth:`StreamGuard.finish`, so no character of a blocked term is ever sent.
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
    try:
        result: Finding | None = method(*args)
    except ScannerError as exc:
        raise ScannerError(scanner.name, str(exc).partition(": ")[2] or "failed") from None
    except Exception as exc:
        raise ScannerError(scanner.name, f"raised {type(exc).__name__}") from None
    return result


class StreamGuard:
    """Scans one streamed text chunk by chunk.

    ``feed`` returns the verdict so far and ``releasable``, the number of characters from the
    start of the stream that may now be sent. Once blocked, the verdict stays blocked and
    ``releasable`` never grows. A scanner with ``window == 0`` (other than ``size``, which only
    counts) needs the whole text, so nothing is releasable before ``finish``.
    """

    __slots__ = (
        "_finished",
        "_keep",
        "_length",
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
        self._range: list[tuple[Scanner, Any, int]] = []
        self._plain: list[tuple[Scanner, Any, int]] = []
        self._whole: list[Scanner] = []
        for s in scanners:
            if callable(getattr(s, "check_length", None)):
                self._length.append((s, s.check_length))  # type: ignore[attr-defined]
            elif s.window <= 0:
                self._whole.append(s)
            elif callable(getattr(s, "scan_from", None)):
                self._range.append((s, s.scan_from, s.window))  # type: ignore[attr-defined]
            else:
                self._plain.append((s, s.scan, s.window))
        widest = max((w for _, _, w in self._range + self._plain), default=0)
        self.holdback = max(widest - 1, 0)
        # The tail keeps the widest overlap plus some context for look-behinds.
        self._keep = widest - 1 + CONTEXT if widest else 0
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

    def feed(self, text: str) -> tuple[Verdict, int]:
        """Append ``text`` and scan it; return ``(verdict, releasable)``."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        if not self._verdict.allowed or not text:
            return self._verdict, self._released
        prev = len(self._tail)
        buf = self._tail + text
        self.total += len(text)
        findings: list[Finding] = []
        for s, check in self._length:
            f = call_scanner(s, check, self.total)
            if f is not None:
                findings.append(f)
        for s, scan_from, w in self._range:
            start = prev - w + 1
            f = call_scanner(s, scan_from, buf, start if start > 0 else 0, False)
            if f is not None:
                findings.append(f)
        for s, scan, w in self._plain:
            start = prev - w + 1
            f = call_scanner(s, scan, buf[start:] if start > 0 else buf)
            if f is not None:
                findings.append(f)
        if self._parts is not None:
            self._parts.append(text)
        self._tail = buf[-self._keep :] if self._keep else ""
        if findings:
            self._verdict = Verdict(False, tuple(findings))
        elif self._parts is None:
            self._released = max(self._released, self.total - self.holdback)
        return self._verdict, self._released

    def feed_many(self, texts: Sequence[str]) -> tuple[Verdict, int]:
        """Feed several chunks with one scan; the result is the same as feeding them in turn.

        When the joined text is blocked, the chunks are scanned again one by one from the
        state before the call, so ``releasable`` is what chunk-by-chunk feeding would give
        (the text before the chunk that completes the finding can still be released).
        """
        if len(texts) == 1 or not self._verdict.allowed or self._finished:
            return self.feed("".join(texts))
        saved = (self._tail, self.total, self._released, len(self._parts or ()))
        verdict, releasable = self.feed("".join(texts))
        if verdict.allowed:
            return verdict, releasable
        self._tail, self.total, self._released, parts = saved
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
        for s, scan_from, w in self._range:
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
