"""The guard's value types and the scanner plug-in protocol.

A :class:`Scanner` looks at a text and returns a :class:`Finding` or ``None``; a
:class:`Verdict` collects the findings of every scanner of one direction. Neither a finding
nor a verdict ever holds scanned text: a verdict is what the cache stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class Direction(StrEnum):
    """Which side of the conversation a text comes from."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Finding:
    """One scanner's objection. ``reason`` names the rule, never the scanned or matched text."""

    scanner: str
    reason: str


Span = tuple[str, int, int]
"""``(kind, start, end)``: where a value to redact is in a scanned text (never the value)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of scanning one text: allowed, or blocked with the findings that blocked it.

    ``spans``: where the values of the kinds whose action is ``redact`` are (offsets and
    kinds only), so a cached verdict redacts a text exactly as a fresh scan would.
    """

    allowed: bool
    findings: tuple[Finding, ...] = ()
    spans: tuple[Span, ...] = ()

    @property
    def scanners(self) -> list[str]:
        """The names of the scanners that objected, each once, in order."""
        return list(dict.fromkeys(f.scanner for f in self.findings))

    def to_dict(self) -> dict[str, Any]:
        """A small, orjson-able form (what the verdict cache stores)."""
        d: dict[str, Any] = {
            "allowed": self.allowed,
            "findings": [[f.scanner, f.reason] for f in self.findings],
        }
        if self.spans:
            d["spans"] = [list(s) for s in self.spans]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        """The inverse of :meth:`to_dict`; raises ``ValueError`` on a malformed value."""
        try:
            allowed = d["allowed"]
            findings = tuple(Finding(str(s), str(r)) for s, r in d.get("findings", ()))
            spans = tuple((str(k), int(a), int(b)) for k, a, b in d.get("spans", ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("malformed verdict") from exc
        if not isinstance(allowed, bool) or any(not 0 <= a < b for _, a, b in spans):
            raise ValueError("malformed verdict")
        return cls(allowed, findings, spans)

    @classmethod
    def of(cls, findings: list[Finding] | tuple[Finding, ...]) -> Verdict:
        """Allowed when there are no findings, blocked otherwise."""
        return cls(not findings, tuple(findings)) if findings else ALLOWED


ALLOWED = Verdict(True)


@runtime_checkable
class Scanner(Protocol):
    """The plug-in point: anything with a ``name``, a ``window`` and ``scan`` is a scanner.

    ``window`` is the longest stretch of text, in characters, that one finding can depend on
    (its match plus any context it looks at). Streamed answers are scanned in overlapping
    windows of that size, and at most ``window - 1`` characters are held back (all of them,
    unless the scanner also has :meth:`HoldScanner.hold`). ``0`` means the scanner needs the
    whole text: in a stream it runs once, at the end, and nothing is released before then.
    ``scan`` must be thread-safe, must not keep the text, and its ``Finding.reason`` must
    never contain the text.
    """

    name: str
    window: int

    def scan(self, text: str) -> Finding | None: ...


@runtime_checkable
class RangeScanner(Scanner, Protocol):
    """A scanner that can look at part of a text (the built-ins do; plug-ins need not).

    ``scan_from`` reports only findings that start at or after ``start``; ``text[:start]`` is
    context (what precedes, for look-behinds). Unless ``final``, a finding whose decision
    depends on what follows the end of ``text`` is not reported yet: it is reported on the
    next call, which scans it again, since it lies within the last ``window - 1`` characters.
    """

    def scan_from(self, text: str, start: int, final: bool) -> Finding | None: ...


@runtime_checkable
class HoldScanner(Scanner, Protocol):
    """A scanner that says which part of a streamed text could still become a finding.

    ``hold(text, start)`` returns the index in ``text`` where the earliest candidate begins
    that more text could still complete (or whose verdict depends on text not yet seen), and
    ``len(text)`` when none is open: a stream may then send everything before that index.
    ``text[:start]`` is context; candidates beginning before ``start`` were closed by an
    earlier call and need not be looked at. A smaller answer only holds more; however small,
    a stream never holds more than ``window - 1`` characters. Optional: without it, a stream
    holds the last ``window - 1`` characters.
    """

    def hold(self, text: str, start: int) -> int: ...


@runtime_checkable
class LengthScanner(Scanner, Protocol):
    """A scanner that only depends on the length of the text (``size``): streamed cheaply."""

    def check_length(self, length: int) -> Finding | None: ...
