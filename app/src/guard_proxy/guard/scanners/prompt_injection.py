"""``prompt_injection``: the injection and jailbreak engine (:mod:`guard_proxy.guard.injection`)
plus operators' literal ``phrases``.

A finding's reason names the family (``prompt_injection.override``) or the phrase's index,
never the text. In a stream, evidence counts within ``WINDOW`` characters, so the scanner's
window is one longer; :meth:`InjectionScanner.hold` holds back only from where a hit, or a
rule match that more text could complete, begins.
"""

from __future__ import annotations

import re
from typing import Any

import regex

from guard_proxy.config.settings import PromptInjectionSettings
from guard_proxy.exceptions import ScannerLoadError
from guard_proxy.guard.injection import decode
from guard_proxy.guard.injection.engine import Engine, Hit
from guard_proxy.guard.injection.evidence import first_cluster
from guard_proxy.guard.injection.normalise import normalise_mapped
from guard_proxy.guard.injection.rules import RULES
from guard_proxy.guard.scanners._base import PatternScanner, fold, max_width
from guard_proxy.guard.types import Finding

NAME = "prompt_injection"
GAP = 16
REACH = 400
"""Characters at the end of a streamed text searched for rule matches still open."""


def _literal(words: list[str]) -> str:
    return " ".join(re.escape(w) for w in words)


def _open_pattern(sources: list[str]) -> Any:
    """Matches that more text could complete or change: never complete, only partial."""
    return regex.compile("|".join(f"(?:{s})[\\s\\S](?!)" for s in sources))


class InjectionScanner:
    """The engine and the operators' phrases as one scanner (thread-safe, keeps no text)."""

    __slots__ = (
        "_engine",
        "_last",
        "_open_blobs",
        "_open_norm",
        "_open_raw",
        "_phrases",
        "name",
        "window",
    )

    def __init__(self, engine: Engine | None, phrases: PatternScanner | None) -> None:
        self.name = NAME
        self._engine = engine
        self._phrases = phrases
        # The hits of the last text scanned in a stream: ``hold`` follows ``scan_from`` on
        # the same text. One slot, replaced whole (safe to share between threads).
        self._last: tuple[str, list[Hit]] = ("", [])
        widths = [phrases.window] if phrases is not None else []
        if engine is not None:
            widths.append(engine.window + 1)
            chosen = set(engine.families)
            norm = [r.source for r in RULES if r.family in chosen and r.view == "norm"]
            raw = [r.source for r in RULES if r.family in chosen and r.view == "raw"]
            blobs = [decode.BASE64.pattern, decode.HEX.pattern, decode.URL.pattern]
            self._open_norm = _open_pattern(norm) if norm else None
            self._open_raw = _open_pattern(raw) if raw else None
            # Encoded runs count only after a cue asks for decoding: held only then.
            self._open_blobs = _open_pattern(blobs) if "encoded" in chosen else None
        else:
            self._open_norm = self._open_raw = self._open_blobs = None
        self.window = max(widths)

    def _reason(self, family: str) -> str:
        return f"{NAME}.{family}"

    def scan(self, text: str) -> Finding | None:
        """The first finding in ``text`` (phrases first), or ``None``."""
        if self._phrases is not None:
            finding = self._phrases.scan(text)
            if finding is not None:
                return finding
        if self._engine is not None:
            cluster = self._engine.judge(text)
            if cluster is not None:
                return Finding(NAME, self._reason(cluster.family))
        return None

    def scan_from(self, text: str, start: int, final: bool) -> Finding | None:
        """See :class:`~guard_proxy.guard.types.RangeScanner`."""
        if self._phrases is not None:
            finding = self._phrases.scan_from(text, start, final)
            if finding is not None:
                return finding
        engine = self._engine
        if engine is not None:
            hits = self._hits(engine, text)
            if not final:
                end = len(text)
                hits = [h for h in hits if h.end < end]
            cluster = first_cluster(
                hits, threshold=engine.threshold, window=engine.window, start=start
            )
            if cluster is not None:
                return Finding(NAME, self._reason(cluster.family))
        return None

    def _hits(self, engine: Engine, text: str) -> list[Hit]:
        last_text, last_hits = self._last
        if last_text is text or last_text == text:
            return last_hits
        hits = engine.hits(text)
        self._last = (text, hits)
        return hits

    def spans(self, text: str) -> list[int]:
        """Where each finding of the whole ``text`` begins (for tests and tools)."""
        out: list[int] = []
        if self._phrases is not None:
            folded = fold(text)
            out += [m.start() for m in self._phrases._pattern.finditer(folded)]
        if self._engine is not None:
            cluster = self._engine.first(text, 0)
            if cluster is not None:
                out.append(cluster.start)
        return out

    def hold(self, text: str, start: int) -> int:
        """Where the earliest hit still in the window, or open rule match, begins."""
        at = len(text)
        if self._phrases is not None:
            at = min(at, self._phrases.hold(text, start))
        engine = self._engine
        if engine is None:
            return at
        nearest = max(start, len(text) - engine.window)
        cued = False
        for h in self._hits(engine, text):
            if h.start >= nearest:
                at = min(at, h.start)
            if h.family == "encoded" and h.start >= len(text) - engine.window:
                cued = True
        lo = max(start, len(text) - REACH)
        low = text.lower()
        for open_raw in (self._open_raw, self._open_blobs if cued else None):
            if open_raw is not None:
                m = open_raw.search(low, lo, partial=True)
                if m is not None:
                    at = min(at, m.start())
        if self._open_norm is not None:
            norm, origin = normalise_mapped(text[lo:])
            m = self._open_norm.search(norm, partial=True)
            if m is not None and m.start() < len(origin):
                at = min(at, lo + origin[m.start()])
        return at


def _phrase_scanner(direction: str, settings: PromptInjectionSettings) -> PatternScanner | None:
    phrases: dict[str, str] = {}
    anchors: list[str] = []
    for i, configured in enumerate(settings.phrases):
        folded = fold(configured).split()
        if not folded:
            raise ScannerLoadError(
                f"guard.{direction}.{NAME}.phrases[{i}]: an empty phrase would block every text"
            )
        anchors.append(max(folded, key=len))
        phrases[f"p{i}"] = _literal(folded)
    if not phrases:
        return None
    gap = rf"\s{{1,{GAP}}}"
    source = "|".join(f"(?P<{g}>{p.replace(' ', gap)})" for g, p in phrases.items())
    longest = max_width(source)
    assert longest is not None
    pattern = re.compile(rf"(?<!\w)(?:{source})(?!\w)")

    def judge(m: re.Match[str]) -> str:
        return f"injection phrase (phrases[{(m.lastgroup or 'p0')[1:]}])"

    return PatternScanner(NAME, pattern, longest, judge, lookahead=True, fold=True, anchors=anchors)


def build(direction: str, settings: PromptInjectionSettings) -> InjectionScanner | None:
    """The scanner, or ``None`` when it is off or has neither rules nor phrases."""
    if not settings.enabled:
        return None
    phrases = _phrase_scanner(direction, settings)
    engine = None
    # The learned family judges whole texts only; answers stream, so it is for prompts.
    families = settings.families
    if direction != "input":
        families = tuple(f for f in families if f != "learned")
    if settings.use_builtin and families:
        engine = Engine(
            families,
            threshold=settings.threshold,
            strict=settings.profile == "strict",
        )
    if engine is None and phrases is None:
        return None
    return InjectionScanner(engine, phrases)
