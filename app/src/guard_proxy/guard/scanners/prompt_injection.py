"""``prompt_injection``: known instruction-override phrases, case- and whitespace-tolerant.

Words may be separated by up to ``GAP`` whitespace characters (spaces, tabs, newlines), which
bounds a match, and so the text a stream holds back.
"""

from __future__ import annotations

import re

from guard_proxy.config.settings import PromptInjectionSettings
from guard_proxy.exceptions import ScannerLoadError
from guard_proxy.guard.scanners._base import PatternScanner, fold, max_width

NAME = "prompt_injection"
GAP = 16

_EARLIER = r"(?:previous|prior|above|earlier|preceding|former|initial|original)"
_RULES = r"(?:instructions?|prompts?|directions|directives|rules|guidelines|context)"
_ALL = r"(?:(?:all|any) )?(?:(?:of )?(?:the|your|my) )?"

# id -> (phrase, anchors): the phrase in lower case, " " standing for a run of whitespace;
# the anchors are literals every match contains (long ones: ``str.find`` skips ahead faster).
BUILTIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "ignore_previous": (rf"ignore {_ALL}{_EARLIER} {_RULES}", ("ignore",)),
    "disregard_previous": (rf"disregard {_ALL}(?:{_EARLIER} )?{_RULES}", ("disregard",)),
    "forget_previous": (rf"forget {_ALL}(?:{_EARLIER} )?{_RULES}", ("forget",)),
    "override_rules": (rf"override {_ALL}(?:safety |system )?{_RULES}", ("override",)),
    "dan": (
        r"you are now (?:dan|in developer mode|jailbroken|unrestricted|unfiltered)",
        ("now",),
    ),
    "do_anything_now": (r"do anything now", ("anything",)),
    "developer_mode": (r"(?:enable|activate|enter) developer mode", ("developer",)),
    "reveal_system_prompt": (
        r"(?:reveal|show|print|repeat|output|display|leak|tell me) (?:me )?(?:your|the) "
        r"(?:system|hidden|initial|original|secret) (?:prompt|instructions|message)",
        ("prompt", "instruction", "message"),
    ),
    "no_restrictions": (
        r"(?:pretend|act|behave) (?:as if |like |that )?you (?:have|had) no "
        r"(?:restrictions|rules|limits|guidelines|filters)",
        ("restriction", "rules", "limits", "guidelines", "filters"),
    ),
    "new_instructions": (r"(?:your )?new instructions are", ("instruction",)),
}


def _regex(phrase: str, gap: str) -> str:
    return phrase.replace(" ", gap)


def _literal(words: list[str]) -> str:
    return " ".join(re.escape(w) for w in words)


def build(direction: str, settings: PromptInjectionSettings) -> PatternScanner | None:
    """The scanner, or ``None`` when it is off or has no phrases at all."""
    if not settings.enabled:
        return None
    phrases: dict[str, tuple[str, str]] = {}  # group -> (phrase, reason)
    anchors: list[str] = []
    if settings.use_builtin:
        for key, (phrase, words) in BUILTIN.items():
            anchors.extend(words)
            phrases[f"b_{key}"] = (phrase, f"injection phrase ({key})")
    for i, configured in enumerate(settings.phrases):
        folded = fold(configured).split()
        if not folded:
            raise ScannerLoadError(
                f"guard.{direction}.{NAME}.phrases[{i}]: an empty phrase would block every text"
            )
        anchors.append(max(folded, key=len))
        phrases[f"p{i}"] = (_literal(folded), f"injection phrase (phrases[{i}])")
    if not phrases:
        return None
    gap = rf"\s{{1,{GAP}}}"
    source = "|".join(f"(?P<{g}>{_regex(p, gap)})" for g, (p, _) in phrases.items())
    longest = max_width(source)
    assert longest is not None
    pattern = re.compile(rf"(?<!\w)(?:{source})(?!\w)")
    reasons = {g: r for g, (_, r) in phrases.items()}

    def judge(m: re.Match[str]) -> str:
        return reasons[m.lastgroup or ""]

    return PatternScanner(NAME, pattern, longest, judge, lookahead=True, fold=True, anchors=anchors)
