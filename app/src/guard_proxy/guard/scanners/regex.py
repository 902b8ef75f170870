"""``regex``: an operator's deny-list of regular expressions, each compiled once."""

from __future__ import annotations

import re

from guard_proxy.config.settings import RegexSettings
from guard_proxy.exceptions import ScannerLoadError
from guard_proxy.guard.scanners._base import (
    MultiPatternScanner,
    PatternScanner,
    constant,
    max_width,
)

NAME = "regex"


def build(direction: str, settings: RegexSettings) -> MultiPatternScanner | None:
    """The scanner, or ``None`` when it is off or has no patterns.

    A pattern that does not compile or that matches the empty string (it would block every
    text) raises :class:`ScannerLoadError` naming ``guard.<direction>.regex.patterns[i]``.
    Matches are bounded by ``max_match_length`` for streaming (a pattern whose longest match
    is shorter uses its own width).
    """
    if not settings.enabled or not settings.patterns:
        return None
    parts = []
    for i, source in enumerate(settings.patterns):
        key = f"guard.{direction}.{NAME}.patterns[{i}]"
        try:
            pattern = re.compile(source)
        except (re.error, ValueError, OverflowError, RecursionError) as exc:
            raise ScannerLoadError(f"{key}: invalid regular expression: {exc}") from exc
        if pattern.search("") is not None:
            raise ScannerLoadError(f"{key}: matches the empty string, so it would block every text")
        width = max_width(source)
        longest = settings.max_match_length
        if width is not None:
            longest = min(width, longest)
        parts.append(
            PatternScanner(NAME, pattern, longest, constant(f"matched {key}"), lookahead=True)
        )
    # Operators' patterns always run in ``re`` (their documented syntax and verdict);
    # ``regex`` only tells a stream which candidates are still open.
    return MultiPatternScanner(NAME, parts, prefilter=False)
