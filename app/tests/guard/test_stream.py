"""The stream guard: split terms are caught, nothing blocked is releasable, work stays linear."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import pytest
from guard_proxy_testing.guards import BLOCKING, NONE_ON, PII_BLOCKED, guard_with, only

from guard_proxy.config.settings import (
    DEFAULT_OUTPUT_SCANNERS,
    BannedSubstringsSettings,
    GuardSettings,
    PiiSettings,
    PluginSettings,
    RegexSettings,
    ScannerSetSettings,
    SizeSettings,
)
from guard_proxy.guard import ALLOWED, Finding, Guard, StreamGuard, Verdict

from .test_scanners import NEGATIVE, POSITIVE

TERM = "Project Falcon"
BANNED = only(banned_substrings=BannedSubstringsSettings(patterns=(TERM, "zyx")))
# The defaults of the output direction plus a banned term: the widest window is not the term's.
DEFAULT_PLUS_TERM = GuardSettings(
    output=dataclasses.replace(
        DEFAULT_OUTPUT_SCANNERS,
        **BLOCKING,
        banned_substrings=BannedSubstringsSettings(patterns=(TERM,)),
    )
)


def run(stream: StreamGuard, chunks: list[str]) -> list[tuple[Verdict, int]]:
    """Feed every chunk (stopping once blocked), then finish; every (verdict, releasable)."""
    results = []
    for chunk in chunks:
        verdict, releasable = stream.feed(chunk)
        results.append((verdict, releasable))
        if not verdict.allowed:
            return results
    results.append(stream.finish())
    return results


def split_at(text: str, *points: int) -> list[str]:
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("settings", ["banned", "defaults"])
def test_term_split_at_every_point_is_caught_and_never_released(settings: str) -> None:
    guard = (
        guard_with(output=BANNED)
        if settings == "banned"
        else Guard.from_settings(DEFAULT_PLUS_TERM)
    )
    prefix, suffix = "Sure. The codename is ", " and more text follows here."
    text = prefix + TERM + suffix
    start, end = len(prefix), len(prefix) + len(TERM)
    for a in range(1, len(text)):
        for b in [None, *range(a + 1, min(a + 20, len(text)))]:
            chunks = split_at(text, a) if b is None else split_at(text, a, b)
            stream = guard.stream("output")
            results = run(stream, chunks)
            verdict, _ = results[-1]
            assert verdict.scanners == ["banned_substrings"], (a, b)
            assert all(releasable <= start for _, releasable in results), (a, b)
            # Caught by the very chunk that completes the term.
            fed = 0
            for chunk in chunks:
                fed += len(chunk)
                if fed >= end:
                    break
            assert stream.total == fed


def test_term_in_single_character_chunks() -> None:
    guard = Guard.from_settings(DEFAULT_PLUS_TERM)
    text = "x" * 500 + TERM.upper() + "y" * 50
    stream = guard.stream("output")
    results = run(stream, list(text))
    assert not results[-1][0].allowed
    assert stream.total == 500 + len(TERM)
    assert max(r for _, r in results) <= 500


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 1000])
def test_text_that_cannot_become_a_finding_is_released_at_once(chunk_size: int) -> None:
    guard = Guard.from_settings(DEFAULT_PLUS_TERM)
    # No scanner has a candidate that begins with any of these characters (a letter could
    # begin the local part of an e-mail address, which blocks here).
    text = "".join(random.Random(chunk_size).choice(" \n!?;,") for _ in range(3000))
    stream = guard.stream("output")
    assert stream.holdback > len(TERM)  # the JWT rule is the widest: the upper bound
    last = 0
    for i in range(0, len(text), chunk_size):
        verdict, releasable = stream.feed(text[i : i + chunk_size])
        assert verdict is ALLOWED
        assert releasable == stream.total and stream.held == 0
        assert releasable >= last
        last = releasable
    assert stream.finish() == (ALLOWED, len(text))


def test_holds_only_the_longest_open_prefix_of_a_term() -> None:
    guard = guard_with(
        output=only(banned_substrings=BannedSubstringsSettings(patterns=("abcdefgh", "xy")))
    )
    stream = guard.stream("output")
    assert stream.holdback == 7  # the upper bound: the longest term - 1
    assert stream.feed("0123456789") == (ALLOWED, 10)  # nothing here can start a term
    assert stream.feed("abcdefg") == (ALLOWED, 10)  # all of it could still be "abcdefgh"
    assert stream.feed("x") == (ALLOWED, 17)  # "abcdefgx" is no term; "x" could be "xy"
    assert stream.feed("abc") == (ALLOWED, 18)
    verdict, releasable = stream.feed("defgh!")
    assert verdict.scanners == ["banned_substrings"] and releasable == 18


def test_blocked_stays_blocked_and_finish_is_final() -> None:
    stream = guard_with(output=BANNED).stream("output")
    blocked, released = stream.feed("zyx")
    assert not blocked.allowed
    assert stream.feed("more") == (blocked, released)
    assert stream.finish() == (blocked, released)
    assert stream.verdict is blocked
    fresh = guard_with(output=BANNED).stream("output")
    fresh.finish()
    with pytest.raises(RuntimeError):
        fresh.feed("x")


def test_empty_chunks_change_nothing() -> None:
    stream = guard_with(output=BANNED).stream("output")
    assert stream.feed("") == (ALLOWED, 0)
    stream.feed("hello world, this is long enough, z")
    assert stream.feed("") == (ALLOWED, stream.total - 1)  # "z" could start "zyx"


class Counting:
    """A plain plug-in scanner that counts the characters it is given."""

    def __init__(self, window: int) -> None:
        self.name = "counting"
        self.window = window
        self.seen = 0

    def scan(self, text: str) -> Finding | None:
        self.seen += len(text)
        return None


class CountingRange(Counting):
    """The same with ``scan_from``: counts only the characters it has to look at."""

    def scan_from(self, text: str, start: int, final: bool) -> Finding | None:
        self.seen += len(text) - start
        return None


@pytest.mark.parametrize("kind", [Counting, CountingRange])
@pytest.mark.parametrize("chunk_size", [1, 5, 100])
def test_total_scan_work_is_linear(kind: type[Counting], chunk_size: int) -> None:
    window = 32
    scanner = kind(window)
    n = 20_000
    stream = StreamGuard([scanner])
    assert stream.holdback == window - 1
    for _ in range(0, n, chunk_size):
        stream.feed("a" * chunk_size)
    stream.finish()
    # new text once, plus at most (window - 1) characters of overlap per chunk
    chunks = n // chunk_size
    assert scanner.seen <= n + chunks * (window - 1) + window
    assert scanner.seen <= window * n  # c * n, whatever the chunking
    # and nothing like the quadratic n^2 / 2 of re-scanning the whole text
    assert scanner.seen < n * n / 100


def test_builtin_scanners_only_see_the_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = Guard.from_settings(DEFAULT_PLUS_TERM)
    seen = 0
    from guard_proxy.guard.scanners import _base

    original = _base.PatternScanner.scan_from

    def counting(self: Any, text: str, start: int, final: bool) -> Any:
        nonlocal seen
        seen += len(text) - start
        return original(self, text, start, final)

    monkeypatch.setattr(_base.PatternScanner, "scan_from", counting)
    stream = guard.stream("output")
    parts = len(guard.scanners("output")) * 10  # no scanner has more than 9 parts
    n = 10_000
    for _ in range(n // 4):
        stream.feed("word")
    assert seen <= parts * (n + (n // 4) * stream.holdback)


def test_whole_text_plugin_holds_everything_until_finish() -> None:
    guard = Guard.from_settings(GuardSettings(
        output=NONE_ON,
        plugins=(PluginSettings(
            name="whole", path="guard.sample_plugin:factory", directions=("output",),
            options={"word": "plugh"},
        ),),
    ))  # fmt: skip
    stream = guard.stream("output")
    assert stream.feed("a" * 100) == (ALLOWED, 0)
    assert stream.feed("plu") == (ALLOWED, 0)
    assert stream.feed("gh and more") == (ALLOWED, 0)
    verdict, releasable = stream.finish()
    assert verdict.scanners == ["whole"] and releasable == 0
    clean = guard.stream("output")
    clean.feed("nothing here")
    assert clean.finish() == (ALLOWED, 12)


def test_size_counts_across_chunks() -> None:
    stream = guard_with(output=only(size=SizeSettings(max_chars=10))).stream("output")
    assert stream.holdback == 0
    assert stream.feed("12345") == (ALLOWED, 5)
    assert stream.feed("67890") == (ALLOWED, 10)
    verdict, releasable = stream.feed("1")
    assert verdict.scanners == ["size"] and releasable == 10


def test_lookbehinds_see_context_before_the_overlap() -> None:
    guard = guard_with(output=only(regex=RegexSettings(patterns=(r"(?<=PIN is )\d{4}(?!\d)",))))
    text = "so your PIN is 1234."
    assert not guard.scan("output", text).allowed
    for size in (1, 2, 5):
        stream = guard.stream("output")
        results = run(stream, [text[i : i + size] for i in range(0, len(text), size)])
        assert results[-1][0].scanners == ["regex"], size
        assert all(r <= text.index("1234") for _, r in results)
    assert guard.stream("output").holdback == 4  # four digits, plus one to see past them


def test_card_number_is_judged_only_once_its_end_is_known() -> None:
    guard = guard_with(output=only(pii=PiiSettings(actions=PII_BLOCKED, kinds=("credit_card",))))
    # 16 Luhn-valid digits that turn out to be part of a longer run: not a card.
    stream = guard.stream("output")
    assert stream.feed("id 4111111111111111")[0] is ALLOWED
    assert stream.feed("2222 end")[0] is ALLOWED
    assert stream.finish()[0] is ALLOWED
    # The same digits followed by a space are a card, caught on that chunk.
    stream = guard.stream("output")
    assert stream.feed("id 4111111111111111")[0] is ALLOWED
    assert not stream.feed(" end")[0].allowed
    # At the very end of the stream they are caught by finish().
    stream = guard.stream("output")
    verdict, releasable = stream.feed("id 4111111111111111")
    assert verdict is ALLOWED and releasable <= 3
    verdict, releasable = stream.finish()
    assert verdict.scanners == ["pii"] and releasable <= 3


def _everything_on() -> GuardSettings:
    # Each test case's own scanner settings, merged: one output guard for the whole corpus.
    merged: dict[str, Any] = {}
    for scanners, *_ in POSITIVE:
        for name in ScannerSetSettings.__dataclass_fields__:
            value = getattr(scanners, name)
            if value.enabled and name != "size":
                merged[name] = value
    return GuardSettings(output=ScannerSetSettings(**merged, size=SizeSettings(enabled=False)))


CORPUS_GUARD = Guard.from_settings(_everything_on())
RELEASED_BEFORE = {"jane.doe+x@example.co.uk": "@example.co.uk"}


@pytest.mark.parametrize("seed", range(20))
def test_streamed_verdicts_match_whole_text_verdicts(seed: int) -> None:
    rng = random.Random(seed)
    cases: list[tuple[str, str | None]] = [
        (t, secret) for s, t, secret in POSITIVE if not s.size.enabled
    ]
    cases += [(t, None) for _, t in NEGATIVE]
    for text, secret in cases:
        prefix = "lorem ipsum " * rng.randint(0, 30)
        padded = prefix + text + " dolor sit"
        count = min(len(padded) - 1, rng.randint(1, 12))
        points = sorted(rng.sample(range(1, len(padded)), count))
        results = run(CORPUS_GUARD.stream("output"), split_at(padded, *points))
        expected = CORPUS_GUARD.scan("output", padded)
        assert results[-1][0] == expected, (text, points)
        assert CORPUS_GUARD.scan("output", text).allowed == (secret is None), text
        if secret is not None:
            # The e-mail finding begins at the "@" (the local part before it is not matched).
            secret = RELEASED_BEFORE.get(secret, secret)
            secret_start = len(prefix) + text.index(secret)
            assert all(r <= secret_start for _, r in results), (text, points)


@pytest.mark.parametrize("block", range(10))
def test_random_texts_stream_like_whole_texts(block: int) -> None:
    """Random mixes of the corpus (some cut), noise and random chunking: same decision."""
    snippets = [t for s, t, _ in POSITIVE if not s.size.enabled] + [t for _, t in NEGATIVE]
    noise = "ab 1-@.\n\tAZ09_"
    for seed in range(block * 50, block * 50 + 50):
        rng = random.Random(seed)
        parts = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                snippet = rng.choice(snippets)
                cut = rng.randint(0, len(snippet))
                parts.append(snippet[:cut] + snippet[cut + 1 :] if rng.random() < 0.3 else snippet)
            else:
                parts.append("".join(rng.choice(noise) for _ in range(rng.randint(0, 30))))
        text = "".join(parts)
        if len(text) < 2:
            continue
        whole = CORPUS_GUARD.scan("output", text)
        for _ in range(3):
            count = min(len(text) - 1, rng.randint(1, 20))
            points = sorted(rng.sample(range(1, len(text)), count))
            verdict = run(CORPUS_GUARD.stream("output"), split_at(text, *points))[-1][0]
            assert verdict.allowed == whole.allowed, (text, points)
            assert set(verdict.scanners) <= set(whole.scanners), (text, points)
