"""Properties of restoring and masking answers (:mod:`guard_proxy.guard.redaction`).

For random answers, chunkings and placeholder positions: what a stream releases piece by
piece is exactly the whole answer rewritten at once (so a placeholder or an address split
across chunks comes out right, and no part of a masked value ever goes out), directly on the
pure rewriter and through the stream relay (``Releaser``) with the default output guard.
"""

from __future__ import annotations

from itertools import pairwise

import orjson
from guard_proxy_testing.guards import NoCache
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from guard_proxy.config.settings import GuardSettings
from guard_proxy.guard import Direction, Guard
from guard_proxy.guard.redaction import Finder, Rewriter, Vault, apply, rewrite
from guard_proxy.proxy.framing import Ndjson
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.release import Releaser
from guard_proxy.proxy.shapes import CHAT
from guard_proxy.proxy.streamformat import StreamFormat
from guard_proxy.proxy.verdicts import VerdictService


def _vault(values: dict[str, str]) -> Vault:
    vault = Vault({"email", "credit_card", "iban"})
    for value, kind in values.items():
        vault.placeholder(kind, value)
    return vault


A = _vault({"alice@example.com": "email", "4111 1111 1111 1111": "credit_card", "b@x.io": "email"})
B = _vault({"zed.secret@corp.example": "email", "5555 5555 5555 4444": "credit_card"})
FINDER = Finder.from_settings(GuardSettings().output)

TOKENS = st.sampled_from(
    [
        "[EMAIL_1]",
        "[EMAIL_2]",
        "[CARD_1]",
        "[EMAIL_9]",
        "[CARD_",
        "[",
        "]",
        "[EMAIL_1",
        "carol.danvers@example.com",
        "x@y.org",
        "@",
        ".",
        " ",
        ", ",
        "\n",
        "hello",
        "word",
        "4111",
        "DE89 3704 0044 0532 0130 00",
        "ü",
    ]
)
TEXTS = st.lists(st.one_of(TOKENS, st.text(max_size=6)), max_size=30).map("".join)


def _cuts(draw: st.DrawFn, n: int) -> list[int]:
    return sorted(set(draw(st.lists(st.integers(0, n), max_size=12))))


@st.composite
def chunked(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(TEXTS)
    bounds = [0, *_cuts(draw, len(text)), len(text)]
    return text, [text[a:b] for a, b in pairwise(bounds) if b > a]


def _streamed(chunks: list[str], vault: Vault, finder: Finder | None) -> str:
    rewriter = Rewriter(vault.restorations(), finder)
    edits = []
    out: list[str] = []
    text = ""
    released = 0
    for chunk in chunks:
        text += chunk
        edits += rewriter.feed(chunk)
        settled = rewriter.settled
        assert released <= settled <= len(text)
        out.append(apply(text[released:settled], released, edits))
        released = settled
    edits += rewriter.finish()
    out.append(apply(text[released:], released, edits))
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(chunked())
def test_restored_stream_equals_restoring_the_whole_answer(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    whole = rewrite(text, A.restorations(), None)
    assert _streamed(chunks, A, None) == whole
    assert whole == text.replace("[EMAIL_1]", "alice@example.com").replace(
        "[CARD_1]", "4111 1111 1111 1111"
    ).replace("[EMAIL_2]", "b@x.io")


@settings(max_examples=400, deadline=None)
@given(chunked())
def test_restored_and_masked_stream_equals_the_whole_answer(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    assert _streamed(chunks, A, FINDER) == rewrite(text, A.restorations(), FINDER)


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_an_answer_never_gets_another_requests_values(text: str) -> None:
    for mine, other in ((A, B), (B, A)):
        out = rewrite(text, mine.restorations(), FINDER)
        for value in other.values():
            assert value not in out or value in text


def test_masked_address_is_never_partly_released() -> None:
    text = "Ask carol.danvers@example.com now"
    released = ""
    rewriter = Rewriter({}, FINDER)
    edits = []
    done = 0
    for ch in text:
        edits += rewriter.feed(ch)
        released += apply(text[done : rewriter.settled], done, edits)
        done = rewriter.settled
        assert "carol" not in released
    edits += rewriter.finish()
    released += apply(text[done:], done, edits)
    assert released == "Ask [EMAIL_REDACTED] now"


def test_only_a_possible_placeholder_is_held() -> None:
    rewriter = Rewriter(A.restorations(), None)
    rewriter.feed("Dear [EM")
    assert rewriter.settled == len("Dear ")
    rewriter.feed("AIL_7] and [X")  # not a placeholder of this request: nothing held
    assert rewriter.settled == rewriter.total


# ------------------------------------------------------------------ through the relay

GUARD = Guard.from_settings(GuardSettings())


def _relay(chunks: list[str], vault: Vault) -> str:
    verdicts = VerdictService(GUARD, NoCache(), Metrics(), "closed")
    framing = Ndjson()
    releaser = Releaser(
        GUARD.stream(Direction.OUTPUT),
        CHAT,
        StreamFormat.NDJSON,
        verdicts,
        Rewriter(vault.restorations(), FINDER),
    )
    lines = [
        orjson.dumps({"message": {"role": "assistant", "content": c}, "done": False})
        for c in chunks
    ]
    lines.append(b'{"message":{"role":"assistant","content":""},"done":true}')
    out: list[bytes] = []
    for line in lines:
        step, finished = framing.lines([line], releaser)
        if step is None:
            step = releaser.flush()
        assert step.stop is None
        out += step.out
        if finished:
            break
    received = [orjson.loads(b) for b in b"".join(out).splitlines() if b.strip()]
    assert received[-1]["done"] is True
    return "".join(r["message"]["content"] for r in received)


@settings(max_examples=200, deadline=None)
@given(chunked())
def test_relayed_stream_equals_the_whole_answer_rewritten(case: tuple[str, list[str]]) -> None:
    text, chunks = case
    # Texts the default output guard would block are not this test's subject.
    assume(GUARD.scan("output", text).allowed)
    assert _relay(chunks, A) == rewrite(text, A.restorations(), FINDER)
