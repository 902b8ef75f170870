"""``banned_substrings``: literal terms, case-insensitive by default, in one alternation."""

from __future__ import annotations

import re

from guard_proxy.config.settings import BannedSubstringsSettings
from guard_proxy.exceptions import ScannerLoadError
from guard_proxy.guard.scanners._base import PatternScanner

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
    fold = (lambda s: s) if settings.case_sensitive else str.lower
    index: dict[str, int] = {}
    for i, term in enumerate(settings.patterns):
        index.setdefault(fold(term), i)
    # Longest first, so a term is never shadowed by one of its own prefixes.
    terms = sorted(index, key=len, reverse=True)
    flags = 0 if settings.case_sensitive else re.IGNORECASE
    pattern = re.compile("|".join(re.escape(t) for t in terms), flags)

    def judge(m: re.Match[str]) -> str:
        i = index.get(fold(m.group()))
        return "banned term" if i is None else f"banned term (patterns[{i}])"

    return PatternScanner(NAME, pattern, max(map(len, terms)), judge, lookahead=False)
