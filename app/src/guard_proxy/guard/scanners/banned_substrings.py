"""``banned_substrings``: literal terms, case-insensitive by default, in one alternation.

Case-insensitive means both the terms and the text are lower-cased (:func:`fold`) and the
alternation runs case-sensitively, which ``re`` searches far faster than ``re.IGNORECASE``.
"""

from __future__ import annotations

import re

from guard_proxy.config.settings import BannedSubstringsSettings
from guard_proxy.exceptions import ScannerLoadError
from guard_proxy.guard.scanners._base import PatternScanner, fold

NAME = "banned_substrings"


def build(direction: str, settings: BannedSubstringsSettings) -> PatternScanner | None:
    """The scanner, or ``None`` when it is off or has no patterns."""
    if not settings.enabled or not settings.patterns:
        return None
    for i, term in enumerate(settings.patterns):
        if not term:
            raise ScannerLoadError(
                f"guard.{direction}.{NAME}.patterns[{i}]: an empty term would block every text"
            )
    folding = not settings.case_sensitive
    index: dict[str, int] = {}
    for i, term in enumerate(settings.patterns):
        index.setdefault(fold(term) if folding else term, i)
    # Longest first, so a term is never shadowed by one of its own prefixes.
    terms = sorted(index, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(t) for t in terms))

    def judge(m: re.Match[str]) -> str:
        return f"banned term (patterns[{index[m.group()]}])"

    return PatternScanner(NAME, pattern, max(map(len, terms)), judge, lookahead=False, fold=folding)
