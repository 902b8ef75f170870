"""Shared machinery of the built-in scanners: compiled patterns, windows, deferred matches."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from guard_proxy.guard.types import Finding

# A judge turns a candidate match into a reason (a finding) or None (not a finding).
Judge = Callable[[re.Match[str]], str | None]

_UNBOUNDED = 1 << 30


def constant(reason: str) -> Judge:
    """A judge that accepts every candidate with the same reason."""

    def judge(m: re.Match[str]) -> str:
        return reason

    return judge


def max_width(pattern: str, flags: int = 0) -> int | None:
    """The longest match ``pattern`` can produce, or ``None`` when it is unbounded/unknown."""
    try:
        from re import _parser  # type: ignore[attr-defined]  # stdlib, private but stable

        hi = int(_parser.parse(pattern, flags).getwidth()[1])
    except Exception:  # pragma: no cover - depends on the interpreter's private parser
        return None
    return None if hi >= _UNBOUNDED or hi >= int(getattr(_parser, "MAXREPEAT", _UNBOUNDED)) else hi


def fold(text: str) -> str:
    """Lower-case ``text`` without changing its length (U+0130 is the one exception to mend)."""
    low = text.lower()
    return low if len(low) == len(text) else text.replace("\u0130", "i").lower()


def minimal_anchors(anchors: Iterable[str]) -> tuple[str, ...]:
    """Anchors without those that contain another anchor (their hits are a subset)."""
    unique = sorted(set(anchors), key=len)
    kept: list[str] = []
    for a in unique:
        if not any(k in a for k in kept):
            kept.append(a)
    return tuple(kept)


class PatternScanner:
    """A scanner made of one compiled pattern and a judge for each candidate match.

    ``lookahead``: the pattern looks one character past its match, so a match that ends at the
    end of a partial text is deferred (see :class:`~guard_proxy.guard.types.RangeScanner`) and
    the window is one longer than the longest match. ``fold``: the pattern is written in lower
    case and runs on :func:`fold` ed text (much faster than ``re.IGNORECASE``). ``anchors``:
    every match contains one of these literals, so ``str.find`` locates candidates and the
    pattern only runs within ``longest`` characters of them (for alternations that ``re``
    cannot search quickly; long anchors are found fastest).

    Put literals first in patterns and boundary look-behinds after them
    (``AKIA(?<![A-Z0-9]AKIA)``): ``re`` then skips ahead to the literal instead of trying the
    pattern at every position.
    """

    __slots__ = (
        "_anchors",
        "_fold",
        "_judge",
        "_longest",
        "_lookahead",
        "_pattern",
        "name",
        "window",
    )

    def __init__(
        self,
        name: str,
        pattern: re.Pattern[str],
        longest: int,
        judge: Judge,
        *,
        lookahead: bool,
        fold: bool = False,
        anchors: Iterable[str] = (),
    ) -> None:
        self.name = name
        self._pattern = pattern
        self._judge = judge
        self._lookahead = lookahead
        self._fold = fold
        self._anchors = minimal_anchors(anchors)
        self._longest = longest
        self.window = longest + (1 if lookahead else 0)

    def scan(self, text: str) -> Finding | None:
        """The first finding in ``text``, or ``None``."""
        return self.scan_from(text, 0, True)

    def scan_from(self, text: str, start: int, final: bool) -> Finding | None:
        """The first finding starting at or after ``start`` (see ``RangeScanner``)."""
        if self._fold:
            text = fold(text)
        if self._anchors:
            return self._scan_anchored(text, start, final)
        end = len(text)
        for m in self._pattern.finditer(text, start):
            if self._lookahead and not final and m.end() >= end:
                return None
            reason = self._judge(m)
            if reason is not None:
                return Finding(self.name, reason)
        return None

    def _scan_anchored(self, text: str, start: int, final: bool) -> Finding | None:
        end = len(text)
        span = self._longest
        spans: list[tuple[int, int]] = []
        for anchor in self._anchors:
            i = text.find(anchor, start)
            while i >= 0:
                spans.append((max(start, i + len(anchor) - span), min(end, i + span + 1)))
                i = text.find(anchor, i + len(anchor))
        if not spans:
            return None
        spans.sort()
        lo, hi = spans[0]
        merged = []
        for a, b in spans[1:]:
            if a <= hi:
                hi = max(hi, b)
            else:
                merged.append((lo, hi))
                lo, hi = a, b
        merged.append((lo, hi))
        for lo, hi in merged:
            for m in self._pattern.finditer(text, lo, hi):
                # At ``hi`` the pattern sees a false end of text: leave such a match to the
                # window of its own anchor, which reaches further.
                if hi < end and m.end() >= hi:
                    continue
                if self._lookahead and not final and m.end() >= end:
                    continue
                reason = self._judge(m)
                if reason is not None:
                    return Finding(self.name, reason)
        return None


class MultiPatternScanner:
    """Several :class:`PatternScanner` s that run independently and report as one scanner.

    Separate passes keep one kind's candidate from hiding another's (an IBAN-shaped run must
    not swallow the character before an ``@``); each pass has a literal or narrow prefix.
    """

    __slots__ = ("_parts", "name", "window")

    def __init__(self, name: str, parts: list[PatternScanner]) -> None:
        self.name = name
        self._parts = tuple(parts)
        self.window = max((p.window for p in parts), default=0)

    def scan(self, text: str) -> Finding | None:
        """The first finding of the first part that has one, or ``None``."""
        return self.scan_from(text, 0, True)

    def scan_from(self, text: str, start: int, final: bool) -> Finding | None:
        """Every part scans from ``start`` (the overlap of the widest part)."""
        for part in self._parts:
            finding = part.scan_from(text, start, final)
            if finding is not None:
                return finding
        return None
