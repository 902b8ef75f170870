"""Builders shared by the guard tests."""

from __future__ import annotations

from typing import Any

from guard_proxy.config.settings import (
    BannedSubstringsSettings,
    GuardSettings,
    InvisibleTextSettings,
    PiiSettings,
    PromptInjectionSettings,
    RegexSettings,
    ScannerSetSettings,
    SecretsSettings,
    SizeSettings,
)
from guard_proxy.guard import Guard

NONE_ON = ScannerSetSettings(
    banned_substrings=BannedSubstringsSettings(enabled=False),
    regex=RegexSettings(enabled=False),
    secrets=SecretsSettings(enabled=False),
    pii=PiiSettings(enabled=False),
    prompt_injection=PromptInjectionSettings(enabled=False),
    invisible_text=InvisibleTextSettings(enabled=False),
    size=SizeSettings(enabled=False),
)


def only(**scanners: Any) -> ScannerSetSettings:
    """A scanner set with every built-in off except the ones given."""
    import dataclasses

    return dataclasses.replace(NONE_ON, **scanners)


def guard_with(
    input: ScannerSetSettings = NONE_ON, output: ScannerSetSettings = NONE_ON, **kw: Any
) -> Guard:
    return Guard.from_settings(GuardSettings(input=input, output=output, **kw))
