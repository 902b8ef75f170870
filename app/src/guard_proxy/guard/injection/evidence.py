"""Scoring by evidence: hits add their weights, one per rule, within a bounded window.

A text is blocked when some window of at most ``window`` characters holds hits whose weights
(each rule counted once, at its highest weight; ``rule~variant`` ids count as one rule) reach
the threshold; negative weights (a text that discusses attacks) count against it. A single
weak hit never does. The window bounds what a stream must keep, so a streamed text and the
whole text get the same verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule's match: where (``start``/``end`` in the scanned text), which rule, how much."""

    start: int
    end: int
    rule: str
    family: str
    weight: float
    roleplay: bool = False


ROLEPLAY_CAP = 0.9
"""The most that role-play signals weigh together (below the default threshold)."""


def _total(best: Iterable[Hit]) -> float:
    plain = play = 0.0
    for h in best:
        if h.roleplay:
            play += h.weight
        else:
            plain += h.weight
    return plain + min(play, ROLEPLAY_CAP)


@dataclass(frozen=True, slots=True)
class Cluster:
    """Hits that together reach the threshold: where the first begins, and the family that
    weighs most in it."""

    start: int
    family: str
    score: float


def score(hits: Sequence[Hit]) -> float:
    """The summed weight of ``hits``, each rule counted once at its highest weight."""
    best: dict[str, Hit] = {}
    for h in hits:
        group = h.rule.partition("~")[0]
        seen = best.get(group)
        if seen is None or h.weight > seen.weight:
            best[group] = h
    return _total(best.values())


def first_cluster(
    hits: Sequence[Hit], *, threshold: float, window: int, start: int = 0
) -> Cluster | None:
    """The earliest cluster (first hit at or after ``start``) that reaches ``threshold``
    within ``window`` characters; ``None`` when there is none. ``hits`` sorted by start."""
    n = len(hits)
    for i in range(n):
        first = hits[i]
        if first.start < start:
            continue
        best: dict[str, Hit] = {}
        for j in range(i, n):
            h = hits[j]
            if h.start - first.start >= window:
                break
            if h.end - first.start > window:
                continue
            group = h.rule.partition("~")[0]
            seen = best.get(group)
            if seen is None or h.weight > seen.weight:
                best[group] = h
        total = _total(best.values())
        if total >= threshold:
            return Cluster(first.start, _family(best.values()), total)
    return None


def _family(hits: object) -> str:
    weights: dict[str, float] = {}
    for h in hits:  # type: ignore[attr-defined]
        weights[h.family] = weights.get(h.family, 0.0) + h.weight
    return max(weights, key=lambda f: weights[f])
