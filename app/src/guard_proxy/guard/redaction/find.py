"""Where the values of the redacted kinds are: spans ``(kind, start, end)`` of a text.

A :class:`Finder` knows the kinds of ``pii`` and ``secrets`` whose action is ``redact`` in
one direction. It reuses the scanners' patterns and checks (Luhn, IBAN, entropy) and widens
a match to the whole value (an e-mail address with its local part, a token with its body, an
assignment's value). In a stream, :meth:`Finder.scan` also says where the earliest value
begins that more text could still create or lengthen: an e-mail address is open while the
text ends in a word (it may still meet an ``@``) or in an address whose domain may go on.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from guard_proxy.config.settings import ScannerSetSettings
from guard_proxy.guard.scanners import pii, secrets
from guard_proxy.guard.scanners._base import (
    PatternScanner,
    constant,
    fold,
    max_width,
    minimal_anchors,
)
from guard_proxy.guard.scanners.pii import email_open
from guard_proxy.guard.types import Span

LABELS: dict[str, str] = {
    "email": "EMAIL",
    "credit_card": "CARD",
    "phone": "PHONE",
    "iban": "IBAN",
    "aws_access_key": "AWS_KEY",
    "aws_secret_key": "AWS_SECRET",
    "password_assignment": "PASSWORD",
    "generic_secret_assignment": "SECRET",
}


def label(kind: str) -> str:
    """The placeholder label of ``kind`` (``EMAIL`` in ``[EMAIL_1]``)."""
    return LABELS.get(kind) or kind.upper().removesuffix("_TOKEN").removesuffix("_API_KEY")


_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}")


def email_spans(text: str, start: int = 0) -> list[tuple[int, int]]:
    """Every e-mail address that begins at or after ``start``: local part, ``@``, domain."""
    out: list[tuple[int, int]] = []
    at = text.find("@", start)
    last = start
    while at >= 0:
        lo = at
        while lo > last and text[lo - 1] in pii.LOCAL:
            lo -= 1
        while lo < at and text[lo] == ".":
            lo += 1
        d = _DOMAIN.match(text, at + 1)
        if lo < at and d is not None:
            out.append((lo, d.end()))
            last = d.end()
            at = text.find("@", last)
        else:
            at = text.find("@", at + 1)
    return out


class _PatternKind:
    """One pattern kind: its scanner (the fast gate: anchors, folding, partial matcher), and
    what a match's value is (``widen``)."""

    __slots__ = ("anchors", "fold", "judge", "kind", "longest", "pattern", "scanner", "widen")

    def __init__(
        self,
        kind: str,
        source: str,
        judge: Callable[[re.Match[str]], str | None],
        lookahead: bool,
        anchors: tuple[str, ...],
        widen: Callable[[str, re.Match[str]], tuple[int, int]],
    ) -> None:
        self.kind = kind
        self.pattern = re.compile(source)
        self.judge = judge
        self.fold = bool(anchors)
        self.anchors = minimal_anchors(anchors)
        self.widen = widen
        longest = max_width(source)
        assert longest is not None, kind
        self.longest = longest
        self.scanner = PatternScanner(
            kind,
            self.pattern,
            longest,
            judge,
            lookahead=lookahead,
            fold=self.fold,
            anchors=anchors,
        )

    def spans(self, text: str, start: int) -> list[tuple[int, int]]:
        if not self.anchors:
            return [
                self.widen(text, m)
                for m in self.pattern.finditer(text, start)
                if self.judge(m) is not None
            ]
        # Every match holds an anchor: search only around them (as the scanner does). A
        # match cut by a window's end is left to the window of its own anchor.
        folded = fold(text)
        end = len(text)
        out: list[tuple[int, int]] = []
        for lo, hi in _windows(folded, self.anchors, start, self.longest):
            for m in self.pattern.finditer(folded, lo, hi):
                if (hi < end and m.end() >= hi) or self.judge(m) is None:
                    continue
                out.append(self.widen(text, m))
        return out

    def open_at(self, text: str, since: int) -> int:
        return self.scanner.hold(text, since)


def _windows(text: str, anchors: tuple[str, ...], start: int, span: int) -> list[tuple[int, int]]:
    """Merged ranges of ``text`` within ``span`` characters of an anchor, from ``start``."""
    end = len(text)
    spans: list[tuple[int, int]] = []
    for anchor in anchors:
        i = text.find(anchor, start)
        while i >= 0:
            spans.append((max(start, i + len(anchor) - span), min(end, i + span + 1)))
            i = text.find(anchor, i + len(anchor))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _whole(text: str, m: re.Match[str]) -> tuple[int, int]:
    return m.span()


class Finder:
    """The redacted kinds of one direction (built by :meth:`from_settings`; none: falsy)."""

    __slots__ = ("_email", "_kinds", "kinds", "window")

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = tuple(kinds)
        self._email = "email" in kinds
        self._kinds: list[_PatternKind] = []
        for kind in kinds:
            if kind in pii.KINDS and kind != "email":
                source, judge, lookahead = pii.KINDS[kind]
                self._kinds.append(_PatternKind(kind, source, judge, lookahead, (), _whole))
            elif kind in secrets.KINDS:
                k = secrets.KINDS[kind]

                def widen(text: str, m: re.Match[str], kind: str = kind) -> tuple[int, int]:
                    return secrets.span(kind, text, m)

                judge = k.judge or constant(k.reason)
                self._kinds.append(
                    _PatternKind(kind, k.pattern, judge, k.lookahead, k.anchors, widen)
                )
        self.window = max((k.scanner.window for k in self._kinds), default=0)

    @classmethod
    def from_settings(cls, settings: ScannerSetSettings) -> Finder:
        """The kinds of ``pii`` and ``secrets`` that are on and whose action is ``redact``."""
        kinds: list[str] = []
        for section in (settings.pii, settings.secrets):
            if section.enabled:
                kinds += [k for k in dict.fromkeys(section.kinds) if section.action(k) == "redact"]
        return cls(kinds)

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def spans(self, text: str, start: int = 0) -> tuple[Span, ...]:
        """Every value in ``text`` beginning at or after ``start``, in order, without overlaps
        (of two overlapping values the one that begins first, then the longer, is kept)."""
        found: list[Span] = []
        if self._email:
            found += [("email", a, b) for a, b in email_spans(text, start)]
        for k in self._kinds:
            found += [(k.kind, a, b) for a, b in k.spans(text, start)]
        if len(found) < 2:
            return tuple(found)
        found.sort(key=lambda s: (s[1], -s[2]))
        out: list[Span] = []
        for s in found:
            if not out or s[1] >= out[-1][2]:
                out.append(s)
        return tuple(out)

    def open_at(self, text: str, since: int) -> int:
        """Where the earliest value begins that more text could still create or change
        (``>= since``), ``len(text)`` when none."""
        at = len(text)
        if self._email:
            at = email_open(text, since)
        for k in self._kinds:
            pos = k.open_at(text, since)
            if pos < at:
                at = pos if pos >= since else since
        return at
