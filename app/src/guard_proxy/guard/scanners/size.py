"""``size``: an upper bound on the length of the scanned text, in characters."""

from __future__ import annotations

from guard_proxy.config.settings import SizeSettings
from guard_proxy.guard.types import Finding

NAME = "size"


class SizeScanner:
    """Blocks a text longer than ``max_chars``. Needs only the length, so streams count."""

    __slots__ = ("_max", "_reason", "name", "window")

    def __init__(self, max_chars: int) -> None:
        self.name = NAME
        self.window = 0
        self._max = max_chars
        self._reason = f"text longer than {max_chars} characters"

    def scan(self, text: str) -> Finding | None:
        return self.check_length(len(text))

    def check_length(self, length: int) -> Finding | None:
        return Finding(self.name, self._reason) if length > self._max else None


def build(direction: str, settings: SizeSettings) -> SizeScanner | None:
    """The scanner, or ``None`` when it is off."""
    return SizeScanner(settings.max_chars) if settings.enabled else None
