"""The injection engine: rules of the enabled families, a prefilter, decoding, evidence.

:meth:`Engine.judge` answers for a whole text (the fast path: benign text leaves after one
normalisation and a set look-up); :meth:`Engine.hits` lists every hit with its place in the
original text (what a stream needs); :meth:`Engine.first` applies the evidence rule to them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from guard_proxy.guard.injection import decode, learned, prefilter
from guard_proxy.guard.injection.evidence import Cluster, Hit, first_cluster, score
from guard_proxy.guard.injection.normalise import normalise, normalise_mapped
from guard_proxy.guard.injection.rules import FAMILIES, RULES, Rule

__all__ = ["Engine", "Hit"]

WINDOW = 1024
"""Characters within which hits count as one piece of evidence (and a stream's overlap)."""

_DECODED_WEIGHT = 1.0
"""What an encoded payload whose decoded text carries evidence of its own adds."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    pattern: re.Pattern[str]
    weight: float


class Engine:
    """Scores texts with the rules of ``families``. ``strict`` counts weak rules double.

    The ``learned`` family (:mod:`.learned`) scores whole texts only (:meth:`judge`): its
    evidence has no place in the text, so :meth:`hits` and :meth:`first` (streams) leave it
    out."""

    __slots__ = (
        "_cue",
        "_everywhere",
        "_index",
        "_model",
        "_raw",
        "_strict",
        "families",
        "threshold",
        "window",
    )

    def __init__(
        self,
        families: Iterable[str] = FAMILIES,
        *,
        threshold: float = 1.0,
        strict: bool = False,
        window: int = WINDOW,
    ) -> None:
        chosen = set(families)
        unknown = chosen - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown families: {', '.join(sorted(unknown))}")
        self.families = tuple(f for f in FAMILIES if f in chosen)
        self.threshold = threshold
        self.window = window
        self._strict = strict
        self._model = learned.load() if "learned" in chosen else None
        compiled = [
            _Compiled(r, re.compile(r.source), min(1.0, r.weight * 2) if strict else r.weight)
            for r in RULES
            if r.family in chosen
        ]
        self._raw = [c for c in compiled if c.rule.view == "raw"]
        self._cue = [c for c in compiled if c.rule.family == "encoded"]
        # Norm rules by the key of each word they can begin with (see :mod:`.prefilter`).
        self._index: dict[str, list[_Compiled]] = {}
        self._everywhere: list[_Compiled] = []
        for c in compiled:
            if c.rule.view != "norm" or c.rule.family == "encoded":
                continue
            leads = prefilter.leads(c.rule.source)
            if leads is None:
                self._everywhere.append(c)
                continue
            for k in {prefilter.key(w) for w in leads}:
                self._index.setdefault(k, []).append(c)

    # ------------------------------------------------------------------ whole texts

    def judge(self, text: str) -> Cluster | None:
        """The first cluster of evidence that blocks ``text``, or ``None``."""
        norm = normalise(text)
        hits = self._hits(text, norm, None)
        extra = self._learned(norm)
        if score(hits) + extra < self.threshold:
            return None
        if len(text) <= self.window:
            hits.sort(key=lambda h: h.start)
            window = len(text) + 1
        else:
            hits, window = self.hits(text), self.window
        found = first_cluster(hits, threshold=self.threshold, window=window)
        if found is not None or not extra:
            return found
        # The learned evidence weighs over the whole text: it joins any one window's rules.
        if extra >= self.threshold:
            return Cluster(0, "learned", extra)
        found = first_cluster(hits, threshold=self.threshold - extra, window=window)
        if found is None:
            return None
        family = found.family if found.score >= extra else "learned"
        return Cluster(found.start, family, found.score + extra)

    def _learned(self, norm: str) -> float:
        """What the learned classifier adds for ``norm`` (strict: weak evidence doubled)."""
        if self._model is None:
            return 0.0
        weight = self._model.evidence(norm)
        return min(1.0, weight * 2) if self._strict else weight

    # ------------------------------------------------------------------ places

    def hits(self, text: str) -> list[Hit]:
        """Every hit in ``text``, placed in ``text``, sorted by start."""
        norm, origin = normalise_mapped(text)
        hits = self._hits(text, norm, origin)
        hits.sort(key=lambda h: h.start)
        return hits

    def first(self, text: str, start: int, *, final: bool = True) -> Cluster | None:
        """The first blocking cluster whose first hit begins at or after ``start``; unless
        ``final``, hits that reach the end of ``text`` (more text may change them) wait."""
        hits = self.hits(text)
        if not final:
            end = len(text)
            hits = [h for h in hits if h.end < end]
        return first_cluster(hits, threshold=self.threshold, window=self.window, start=start)

    # ------------------------------------------------------------------ matching

    def _hits(self, text: str, norm: str, origin: list[int] | None) -> list[Hit]:
        low = text.lower()
        hits: list[Hit] = []
        for c in self._raw:
            hints = c.rule.hints
            if hints and not any(h in low for h in hints):
                continue
            for m in c.pattern.finditer(low):
                hits.append(
                    Hit(m.start(), m.end(), c.rule.id, c.rule.family, c.weight, c.rule.roleplay)
                )
        if norm:
            self._norm_hits(norm, origin, hits)
        if self._cue and not _CUES.isdisjoint(norm.split()):
            for c in self._cue:
                for m in c.pattern.finditer(norm):
                    s, e = _place(m.start(), m.end(), origin)
                    hits.append(Hit(s, e, c.rule.id, c.rule.family, c.weight, c.rule.roleplay))
                    self._decoded(text, m.group(), (s, e), hits)
        return hits

    def _norm_hits(self, norm: str, origin: list[int] | None, hits: list[Hit]) -> None:
        index = self._index
        pos = 0
        for word in norm.split(" "):
            rules = index.get(word[:3])
            if rules is not None:
                for c in rules:
                    m = c.pattern.match(norm, pos)
                    if m is not None:
                        s, e = _place(m.start(), m.end(), origin)
                        hits.append(Hit(s, e, c.rule.id, c.rule.family, c.weight, c.rule.roleplay))
            pos += len(word) + 1
        for c in self._everywhere:
            for m in c.pattern.finditer(norm):
                s, e = _place(m.start(), m.end(), origin)
                hits.append(Hit(s, e, c.rule.id, c.rule.family, c.weight, c.rule.roleplay))

    def _decoded(self, raw: str, cue: str, at: tuple[int, int], hits: list[Hit]) -> None:
        for s, e, text in decode.candidates(raw, cue, at):
            inner: list[Hit] = []
            self._norm_hits(normalise(text), None, inner)
            for c in self._raw:
                if c.pattern.search(text.lower()):
                    inner.append(Hit(0, 0, c.rule.id, c.rule.family, c.weight))
            if score(inner) >= 0.5:
                hits.append(Hit(s, e, "encoded.payload", "encoded", _DECODED_WEIGHT))


def _place(start: int, end: int, origin: list[int] | None) -> tuple[int, int]:
    """A match in the normalised text as a span of the original (unchanged without a map)."""
    if origin is None:
        return start, end
    return origin[start], origin[end - 1] + 1


_CUES = frozenset(
    w for r in RULES if r.family == "encoded" for w in prefilter.leads(r.source) or ()
)
"""Words without which the decode cue cannot match (decoding is never tried then)."""
