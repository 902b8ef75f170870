"""Shared machinery of the built-in scanners: compiled patterns, windows, deferred matches."""

from __future__ import annotations

import re
from collections.abc import Callable

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


class PatternScanner:
    """A scanner made of one compiled pattern and a judge for each candidate match.

    ``lookahead``: the pattern looks one character past its match, so a match that ends at the
    end of a partial text is deferred (see :class:`~guard_proxy.guard.types.RangeScanner`) and
    the window is one longer than the longest match.
    """

    __slots__ = ("_judge", "_lookahead", "_pattern", "name", "window")

    def __init__(
        self, name: str, pattern: re.Pattern[str], longest: int, judge: Judge, *, lookahead: bool
    ) -> None:
        self.name = name
        self._pattern = pattern
        self._judge = judge
        self._lookahead = lookahead
        self.window = longest + (1 if lookahead else 0)

    def scan(self, text: str) -> Finding | None:
        """The first finding in ``text``, or ``None``."""
        return self.scan_from(text, 0, True)

    def scan_from(self, text: str, start: int, final: bool) -> Finding | None:
        """The first finding starting at or after ``start`` (see ``RangeScanner``)."""
        end = len(text)
        for m in self._pattern.finditer(text, start):
            if self._lookahead and not final and m.end() >= end:
                return None
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
