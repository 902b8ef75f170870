"""Shared machinery of the built-in scanners: compiled patterns, windows, deferred matches."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from guard_proxy.guard.scanners._partial import PartialMatcher, matcher
from guard_proxy.guard.types import Finding

# A judge turns a candidate match into a reason (a finding) or None (not a finding).
Judge = Callable[[re.Match[str]], str | None]

_UNBOUNDED = 1 << 30

LONG = 96
"""New characters past which a stream scans in ``re`` and searches only the tail (measured:
the ``regex`` partial search of an alternation costs more per character than ``re``)."""


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

    In a stream, :meth:`scan_hold` also says where the earliest candidate that more text
    could still complete begins (see :mod:`~guard_proxy.guard.scanners._partial`).
    """

    __slots__ = (
        "_anchors",
        "_fold",
        "_judge",
        "_longest",
        "_lookahead",
        "_partial",
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
        self._partial = matcher([self.spec], _fold_or_none(fold))

    @property
    def spec(self) -> tuple[str, int, bool]:
        """``(source, flags, lookahead)``: what :class:`PartialMatcher` is built from."""
        return self._pattern.pattern, self._pattern.flags, self._lookahead

    @property
    def folds(self) -> bool:
        """Whether the pattern runs on :func:`fold` ed text."""
        return self._fold

    @property
    def partial(self) -> PartialMatcher | None:
        """The partial matcher of this pattern alone (``None``: ``regex`` cannot compile it)."""
        return self._partial

    def hold(self, text: str, start: int) -> int:
        """Where the earliest candidate that more text could complete begins (``>= start``),
        ``len(text)`` when none; ``0`` when unknown (the guard then holds the whole window).

        Only the last ``window - 1`` characters are searched: a candidate that began earlier
        would be longer than any match of the pattern.
        """
        if self._partial is None:
            return 0
        nearest = len(text) - self.window + 1
        return self._partial.open_at(text, start if start > nearest else nearest)

    def scan_hold(self, text: str, start: int, since: int) -> tuple[Finding | None, int]:
        """``(scan_from(text, start, False), hold(text, since))``, cheaper than both.

        ``since >= start`` is the earliest start still open after the previous call: a new
        finding cannot begin before it, so when a few characters came, one partial search
        tells whether the exact scan must run at all (a complete match begins at or after
        ``since``). When many came, the exact scan runs (``re`` skips ahead faster than a
        partial search) and only the last ``window - 1`` characters are searched for open
        candidates.
        """
        p = self._partial
        if p is None:
            return self.scan_from(text, start, False), 0
        if len(text) - since > LONG:
            return self.scan_from(text, start, False), self.hold(text, since)
        complete, at = p.probe(text, since)
        return (self.scan_from(text, start, False) if complete else None), at

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

    In a stream (:meth:`scan_hold`) the parts' open candidates are found by one partial
    search per group of parts (folded or not); ``prefilter``: the exact scans run only when
    that search sees a complete match (off for operators' patterns, which always run in
    ``re``, whose verdict is the documented one). ``split_above``: a longer stretch of new
    text is searched part by part instead (an alternation of patterns that begin with a
    character class is searched position by position, while each part alone skips ahead).
    """

    __slots__ = ("_each", "_matchers", "_parts", "_prefilter", "_split", "name", "window")

    def __init__(
        self,
        name: str,
        parts: list[PatternScanner],
        *,
        prefilter: bool = True,
        split_above: int | None = None,
    ) -> None:
        self.name = name
        self._parts = tuple(parts)
        self.window = max((p.window for p in parts), default=0)
        self._prefilter = prefilter
        self._each = _each(self._parts)
        self._matchers = _combined(self._parts) if prefilter else self._each
        self._split = LONG if split_above is None else split_above

    def hold(self, text: str, start: int) -> int:
        """The earliest :meth:`PatternScanner.hold` of the parts (each searches only its own
        window's worth of the end)."""
        if self._each is None:
            return 0
        return min((p.hold(text, start) for p in self._parts), default=len(text))

    def scan_hold(self, text: str, start: int, since: int) -> tuple[Finding | None, int]:
        """See :meth:`PatternScanner.scan_hold`; past ``split_above`` new characters, or
        without ``prefilter``, the exact scans run and each part searches its own tail."""
        matchers = self._matchers
        if matchers is None:
            return self.scan_from(text, start, False), 0
        if not self._prefilter or len(text) - since > self._split:
            return self.scan_from(text, start, False), self.hold(text, since)
        at = len(text)
        complete = False
        for m in matchers:
            seen, pos = m.probe(text, since)
            complete = complete or seen
            if pos < at:
                at = pos
        return (self.scan_from(text, start, False) if complete else None), at

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


def _fold_or_none(folds: bool) -> Callable[[str], str] | None:
    return fold if folds else None


def _each(parts: tuple[PatternScanner, ...]) -> tuple[PartialMatcher, ...] | None:
    """Each part's own matcher; ``None`` when any part has none."""
    out = tuple(p.partial for p in parts if p.partial is not None)
    return out if len(out) == len(parts) else None


def _combined(parts: tuple[PatternScanner, ...]) -> tuple[PartialMatcher, ...] | None:
    """One matcher per group of parts that run on the same text (folded or not)."""
    out: list[PartialMatcher] = []
    for folds in (False, True):
        group = tuple(p for p in parts if p.folds == folds)
        if not group:
            continue
        one = matcher([p.spec for p in group], _fold_or_none(folds))
        if one is not None:
            out.append(one)
            continue
        each = _each(group)
        if each is None:
            return None
        out.extend(each)
    return tuple(out)
