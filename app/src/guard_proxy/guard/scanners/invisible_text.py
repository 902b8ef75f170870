"""``invisible_text``: zero-width, bidi-control and Unicode tag characters.

Flags U+200B-U+200D, U+2060, U+FEFF anywhere but at the very start, the bidi embeddings and
overrides U+202A-U+202E and isolates U+2066-U+2069, and the tag block U+E0000-U+E007F.
"""

from __future__ import annotations

import re

from guard_proxy.config.settings import InvisibleTextSettings
from guard_proxy.guard.types import Finding

NAME = "invisible_text"

_ZERO_WIDTH = "\u200b-\u200d\u2060"
_BIDI = "\u202a-\u202e\u2066-\u2069"
_TAGS = "\U000e0000-\U000e007f"
_PATTERN = re.compile(f"[{_ZERO_WIDTH}{_BIDI}{_TAGS}]")


def _reason(ch: str) -> str:
    cp = ord(ch)
    if cp >= 0xE0000:
        return "Unicode tag character"
    if cp == 0xFEFF:
        return "byte-order mark inside the text"
    if 0x202A <= cp <= 0x202E or 0x2066 <= cp <= 0x2069:
        return "bidirectional control character"
    return "zero-width character"


class InvisibleTextScanner:
    """One pass of one character class; a window of one character."""

    __slots__ = ("name", "window")

    def __init__(self) -> None:
        self.name = NAME
        self.window = 1

    def scan(self, text: str) -> Finding | None:
        return self.scan_from(text, 0, True)

    def scan_from(self, text: str, start: int, final: bool) -> Finding | None:
        if text.isascii():  # O(1) in CPython: all of these characters are non-ASCII
            return None
        m = _PATTERN.search(text, start)
        if m is not None:
            return Finding(self.name, _reason(m.group()))
        # U+FEFF is a byte-order mark at the very start, and hides text anywhere else.
        if text.find("\ufeff", max(start, 1)) >= 0:
            return Finding(self.name, _reason("\ufeff"))
        return None


def build(direction: str, settings: InvisibleTextSettings) -> InvisibleTextScanner | None:
    """The scanner, or ``None`` when it is off."""
    return InvisibleTextScanner() if settings.enabled else None
