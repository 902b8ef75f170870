"""The built-in scanners, one per module, and :func:`build_scanners` for one direction."""

from __future__ import annotations

from typing import Any

from guard_proxy.config.settings import ScannerSetSettings
from guard_proxy.guard.scanners import (
    banned_substrings,
    invisible_text,
    pii,
    prompt_injection,
    regex,
    secrets,
    size,
)
from guard_proxy.guard.types import Scanner

# Settings key -> module with ``build(direction, settings) -> Scanner | None``; run in this order.
BUILTIN: dict[str, Any] = {
    "size": size,
    "invisible_text": invisible_text,
    "banned_substrings": banned_substrings,
    "regex": regex,
    "secrets": secrets,
    "pii": pii,
    "prompt_injection": prompt_injection,
}


def build_scanners(direction: str, settings: ScannerSetSettings) -> list[Scanner]:
    """The enabled built-in scanners of one direction (raises ``ScannerLoadError``)."""
    scanners: list[Scanner] = []
    for key, module in BUILTIN.items():
        scanner = module.build(direction, getattr(settings, key))
        if scanner is not None:
            scanners.append(scanner)
    return scanners


__all__ = ["BUILTIN", "build_scanners"]
