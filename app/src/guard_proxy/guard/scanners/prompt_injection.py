"""``prompt_injection``: known instruction-override phrases, case- and whitespace-tolerant.

Words are joined by ``\\s+``. For streaming the window assumes at most ``GAP`` whitespace
characters between two words; a phrase stretched further is still caught by whole-text scans.
"""

from __future__ import annotations

import re

from guard_proxy.config.settings import PromptInjectionSettings
from guard_proxy.exceptions import ScannerLoadError
from guard_proxy.guard.scanners._base import PatternScanner, max_width

NAME = "prompt_injection"
GAP = 16

_EARLIER = r"(?:previous|prior|above|earlier|preceding|former|initial|original)"
_RULES = r"(?:instructions?|prompts?|directions|directives|rules|guidelines|context)"
_ALL = r"(?:(?:all|any) )?(?:(?:of )?(?:the|your|my) )?"

# id -> phrase; " " stands for a run of whitespace between words.
BUILTIN: dict[str, str] = {
    "ignore_previous": rf"ignore {_ALL}{_EARLIER} {_RULES}",
    "disregard_previous": rf"disregard {_ALL}(?:{_EARLIER} )?{_RULES}",
    "forget_previous": rf"forget {_ALL}(?:{_EARLIER} )?{_RULES}",
    "override_rules": rf"override {_ALL}(?:safety |system )?{_RULES}",
    "dan": r"you are now (?:DAN|in developer mode|jailbroken|unrestricted|unfiltered)",
    "do_anything_now": r"do anything now",
    "developer_mode": r"(?:enable|activate|enter) developer mode",
    "reveal_system_prompt": (
        r"(?:reveal|show|print|repeat|output|display|leak|tell me) (?:me )?(?:your|the) "
        r"(?:system|hidden|initial|original|secret) (?:prompt|instructions|message)"
    ),
    "no_restrictions": (
        r"(?:pretend|act|behave) (?:as if |like |that )?you (?:have|had) no "
        r"(?:restrictions|rules|limits|guidelines|filters)"
    ),
    "new_instructions": r"(?:your )?new instructions are",
}


def _regex(phrase: str, gap: str) -> str:
    return phrase.replace(" ", gap)


def _literal(words: str) -> str:
    return " ".join(re.escape(w) for w in words.split())


def build(direction: str, settings: PromptInjectionSettings) -> PatternScanner | None:
    """The scanner, or ``None`` when it is off or has no phrases at all."""
    if not settings.enabled:
        return None
    phrases: dict[str, tuple[str, str]] = {}  # group -> (phrase, reason)
    if settings.use_builtin:
        for key, phrase in BUILTIN.items():
            phrases[f"b_{key}"] = (phrase, f"injection phrase ({key})")
    for i, words in enumerate(settings.phrases):
        if not words.split():
            raise ScannerLoadError(
                f"guard.{direction}.{NAME}.phrases[{i}]: an empty phrase would block every text"
            )
        phrases[f"p{i}"] = (_literal(words), f"injection phrase (phrases[{i}])")
    if not phrases:
        return None
    free, capped = r"\s+", rf"\s{{1,{GAP}}}"
    source = "|".join(f"(?P<{g}>{_regex(p, free)})" for g, (p, _) in phrases.items())
    bounded = "|".join(f"(?:{_regex(p, capped)})" for p, _ in phrases.values())
    longest = max_width(bounded, re.IGNORECASE)
    assert longest is not None
    flags = re.IGNORECASE
    pattern = re.compile(rf"(?<!\w)(?:{source})(?!\w)", flags)
    reasons = {g: r for g, (_, r) in phrases.items()}

    def judge(m: re.Match[str]) -> str:
        return reasons[m.lastgroup or ""]

    return PatternScanner(NAME, pattern, longest, judge, lookahead=True)
