"""The learned evidence source: a linear text classifier over hashed word n-grams.

Features are the distinct words and word pairs of the :func:`~.normalise.normalise` d text,
each hashed with CRC-32 into ``2**bits`` buckets, valued ``1/sqrt(count of distinct
features)`` (binary, L2-normalised). :meth:`Model.margin` is ``bias + sum(weight[bucket] *
value)``: the decision function of the logistic regression that ``bench/guard_eval/train.py``
fits with scikit-learn on the same features (scikit-learn is needed only to train; the
weights ship in ``learned.json.gz`` with their provenance).
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

DATA = "learned.json.gz"
"""The weights' file, next to this module in the package."""


def features(norm: str, bits: int) -> set[int]:
    """The distinct buckets of the words and word pairs of normalised ``norm``."""
    mask = (1 << bits) - 1
    crc32 = zlib.crc32
    out: set[int] = set()
    add = out.add
    prev = -1
    for word in norm.encode().split():
        h = crc32(word)
        add(h & mask)
        if prev >= 0:
            # crc32(prev_word + b" " + word), continued from the running value of prev_word.
            add(crc32(word, crc32(b" ", prev)) & mask)
        prev = h
    return out


@dataclass(frozen=True, slots=True)
class Model:
    """Hashed-feature weights, the bias and the margins that turn the score into evidence."""

    bits: int
    bias: float
    weights: dict[int, float]
    weak: float
    """A margin at or above this is weak evidence (``WEAK_WEIGHT``)."""
    strong: float
    """A margin at or above this is strong evidence (``STRONG_WEIGHT``, blocks alone)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Texts (written for the purpose, not from a corpus) with the margin scikit-learn gave."""

    def margin(self, norm: str) -> float:
        """The classifier's decision function for normalised text ``norm``."""
        buckets = features(norm, self.bits)
        if not buckets:
            return self.bias
        weights = self.weights
        total = sum(map(weights.__getitem__, weights.keys() & buckets))
        return self.bias + total / math.sqrt(len(buckets))

    def evidence(self, norm: str) -> float:
        """The weight the margin of ``norm`` adds to the evidence (0, weak or strong)."""
        m = self.margin(norm)
        if m >= self.strong:
            return STRONG_WEIGHT
        if m >= self.weak:
            return WEAK_WEIGHT
        return 0.0


WEAK_WEIGHT = 0.5
STRONG_WEIGHT = 1.0


def parse(raw: bytes) -> Model:
    """A model from the gzip-compressed JSON that ``train.py`` writes."""
    data = json.loads(gzip.decompress(raw))
    scale = float(data["scale"])
    index: list[int] = []
    at = 0
    for delta in data["index_deltas"]:
        at += int(delta)
        index.append(at)
    weights = {i: q * scale for i, q in zip(index, data["quantised"], strict=True)}
    return Model(
        bits=int(data["bits"]),
        bias=float(data["bias"]),
        weights=weights,
        weak=float(data["weak"]),
        strong=float(data["strong"]),
        provenance=dict(data.get("provenance", {})),
        checks=list(data.get("checks", [])),
    )


@cache
def load() -> Model:
    """The packaged model (read once per process)."""
    return parse(resources.files(__package__).joinpath(DATA).read_bytes())
