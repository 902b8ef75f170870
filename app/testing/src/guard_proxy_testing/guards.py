"""Builders of guards and stream releasers shared by the guard and proxy tests.

``NONE_ON``/``only``/``guard_with`` build guards from settings; ``banned_guard`` and
``make_releaser`` build the guard (banning ``TERM``) and releaser the stream tests drive
without an app; ``push`` feeds a releaser one piece as one upstream read, as the framing does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from guard_proxy.config.settings import (
    PII_KINDS,
    SECRET_KINDS,
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
from guard_proxy.guard import Direction, Guard
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.release import Releaser, Step
from guard_proxy.proxy.shapes import SHAPES, Kind
from guard_proxy.proxy.streamformat import StreamFormat
from guard_proxy.proxy.verdicts import VerdictService

TERM = "forbidden-term"
PII_BLOCKED = dict.fromkeys(PII_KINDS, "block")
"""``actions`` that make every PII kind block (the defaults redact)."""
SECRETS_BLOCKED = {
    **dict.fromkeys(SECRET_KINDS, "block"),
    "generic_secret_assignment": "redact",
}
"""``actions`` that make every credential kind block but the generic assignment (it overlaps
the named kinds, so a stream and a whole text could name different reasons)."""
BLOCKING = {
    "pii": PiiSettings(actions=PII_BLOCKED),
    "secrets": SecretsSettings(actions=SECRETS_BLOCKED),
}
"""The ``pii`` and ``secrets`` settings of a scanner set whose every kind blocks."""

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
    return dataclasses.replace(NONE_ON, **scanners)


def guard_with(
    input: ScannerSetSettings = NONE_ON, output: ScannerSetSettings = NONE_ON, **kw: Any
) -> Guard:
    return Guard.from_settings(GuardSettings(input=input, output=output, **kw))


def banned_guard() -> Guard:
    """A guard whose only scanner bans ``TERM``, in both directions."""
    only_banned = only(banned_substrings=BannedSubstringsSettings(patterns=(TERM,)))
    return guard_with(only_banned, only_banned)


class NoCache:
    """A verdict cache that always computes."""

    def key(self, direction: str, config_hash: str, text: str) -> str:
        return text

    async def get_or_compute(self, key: str, compute: Any, codec: Any = None, /) -> tuple[Any, str]:
        return await compute(), "disabled"


def make_releaser(kind: str, fmt: StreamFormat = StreamFormat.NDJSON) -> Releaser:
    """A releaser of ``kind`` pieces (NDJSON unless ``fmt``) behind :func:`banned_guard`'s
    output stream, no cache."""
    guard = banned_guard()
    verdicts = VerdictService(guard, NoCache(), Metrics(), "closed")
    return Releaser(guard.stream(Direction.OUTPUT), SHAPES[Kind(kind)], fmt, verdicts)


def push(releaser: Releaser, obj: dict[str, Any] | None, raw: bytes) -> Step:
    """One piece arriving in a read of its own: ``add`` it, then ``flush`` (as the relays do)."""
    stop = releaser.add(obj, raw)
    return stop if stop is not None else releaser.flush()
