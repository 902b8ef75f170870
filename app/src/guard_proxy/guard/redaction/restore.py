"""Rewriting an answer: placeholders back to their values, the model's own values masked.

Pure and small so that the streamed and the complete paths share it (and the property tests
test it directly). A :class:`Rewriter` is fed the answer's text as it comes; it says how much
of it is *settled* (no placeholder or value that more text could still complete begins
before that point) and the :class:`Edit` s in the settled part. Applying the edits of a
stream piece by piece (:func:`apply`) gives the same text as rewriting the whole answer at
once (:func:`rewrite`), whatever the chunking.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from guard_proxy.guard.redaction.find import Finder, label

CONTEXT = 16
"""Settled characters kept before the open part, for the patterns' look-behinds."""
MAX_HOLD = 320
"""The most a rewriter ever holds back (an e-mail address is at most 64 + 1 + 255)."""
_PLACEHOLDER = re.compile(r"\[[A-Z0-9_]{1,40}_[0-9]{1,6}\]")


class Edit(NamedTuple):
    """Replace ``[start, end)`` of the answer (positions from its first character) by ``text``."""

    start: int
    end: int
    text: str
    kind: str  # the kind masked, or "" for a restored placeholder


def masked(kind: str) -> str:
    """What replaces a value the model wrote itself: ``[EMAIL_REDACTED]``."""
    return f"[{label(kind)}_REDACTED]"


class Rewriter:
    """Rewrites one answer text (a stream's, or a whole one with :func:`rewrite`).

    **Parameters:**

    * **restorations** - placeholder -> value (one request's; see :class:`Vault`).
    * **finder** - the kinds masked in the answer, or ``None``.
    """

    __slots__ = ("_buf", "_finder", "_prefixes", "_restore", "base", "settled", "total")

    def __init__(self, restorations: Mapping[str, str], finder: Finder | None) -> None:
        self._restore = dict(restorations)
        self._finder = finder if finder else None
        # Every proper prefix of a placeholder that begins with "[": held while it may grow.
        self._prefixes = frozenset(p[:i] for p in self._restore for i in range(1, len(p)))
        self._buf = ""  # the text from ``base``: context, then the unsettled part
        self.base = 0
        self.settled = 0
        self.total = 0

    def __bool__(self) -> bool:
        return bool(self._restore) or self._finder is not None

    @property
    def restorations(self) -> Mapping[str, str]:
        """Placeholder -> value, as given."""
        return self._restore

    @property
    def finder(self) -> Finder | None:
        """The kinds masked in the answer, or ``None``."""
        return self._finder

    def feed(self, text: str) -> list[Edit]:
        """Append ``text``; return the edits that are now settled (``settled`` moved on)."""
        self._buf += text
        self.total += len(text)
        return self._settle(final=False)

    def finish(self) -> list[Edit]:
        """The answer ended: everything is settled; the remaining edits."""
        return self._settle(final=True)

    def _open(self, buf: str, since: int) -> int:
        """Where in ``buf`` the earliest candidate at or after ``since`` begins."""
        at = len(buf)
        if self._prefixes:
            i = buf.rfind("[", since)
            if i >= 0 and buf[i:] in self._prefixes:
                at = i
        if self._finder is not None:
            pos = self._finder.open_at(buf, since)
            if pos < at:
                at = pos
        return at

    def _settle(self, final: bool) -> list[Edit]:
        buf, base = self._buf, self.base
        since = self.settled - base
        size = len(buf)
        end = size
        if not final:
            end = self._open(buf, since)
            if size - end > MAX_HOLD:
                end = size - MAX_HOLD
        edits: list[Edit] = []
        if self._restore:
            for m in _PLACEHOLDER.finditer(buf, since):
                value = self._restore.get(m.group())
                if value is not None:
                    edits.append(Edit(m.start(), m.end(), value, ""))
        if self._finder is not None:
            restored = list(edits)
            for kind, a, b in self._finder.spans(buf, since):
                if not final and b == size and a < end:
                    end = a  # the value may still grow
                if any(a < e.end and e.start < b for e in restored):
                    continue
                edits.append(Edit(a, b, masked(kind), kind))
        # Settle only between edits, never inside one.
        moved = True
        while moved:
            moved = False
            for e in edits:
                if e.start < end < e.end:
                    end, moved = e.start, True
        out = sorted(
            Edit(base + e.start, base + e.end, e.text, e.kind) for e in edits if e.end <= end
        )
        self.settled = base + end
        keep = end - CONTEXT if end > CONTEXT else 0
        self._buf = buf[keep:]
        self.base = base + keep
        return out


def apply(text: str, offset: int, edits: Sequence[Edit]) -> str:
    """``text`` (the answer's characters from ``offset``) with the edits that touch it: an
    edit's replacement goes where the edit begins; the rest of its characters are dropped."""
    end = offset + len(text)
    out: list[str] = []
    pos = offset
    for e in edits:
        if e.end <= offset or e.start >= end:
            continue
        if e.start >= offset:
            out.append(text[pos - offset : e.start - offset])
            out.append(e.text)
        pos = max(pos, min(e.end, end))
    out.append(text[pos - offset :])
    return "".join(out)


def rewrite(text: str, restorations: Mapping[str, str], finder: Finder | None) -> str:
    """The whole answer rewritten at once (what a stream of it comes to)."""
    r = Rewriter(restorations, finder)
    if not r:
        return text
    edits = r.feed(text) + r.finish()
    return apply(text, 0, edits)
