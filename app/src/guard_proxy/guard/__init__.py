"""The guard: scanners, verdicts, the pipeline and the stream guard.

Imports config and exceptions only (no HTTP, no cache). The proxy uses :class:`Guard`,
:class:`Verdict`, :class:`Direction` and :class:`StreamGuard`; operators extend it through
the :class:`Scanner` protocol (see ``docs/scanners.md``).
"""

from guard_proxy.guard.pipeline import Guard
from guard_proxy.guard.stream import StreamGuard
from guard_proxy.guard.types import (
    ALLOWED,
    Direction,
    Finding,
    HoldScanner,
    LengthScanner,
    RangeScanner,
    Scanner,
    Verdict,
)

__all__ = [
    "ALLOWED",
    "Direction",
    "Finding",
    "Guard",
    "HoldScanner",
    "LengthScanner",
    "RangeScanner",
    "Scanner",
    "StreamGuard",
    "Verdict",
]
