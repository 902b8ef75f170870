"""Release coalescing: no more lines or sends than the upstream's, scans batched per read."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import orjson
from guard_proxy_testing.guards import TERM, NoCache, banned_guard, make_releaser, push

from guard_proxy.guard import Direction, Finding, StreamGuard
from guard_proxy.proxy import shapes
from guard_proxy.proxy.framing import ndjson_encode, relay_stream, sse_encode
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.release import Releaser
from guard_proxy.proxy.streamformat import StreamFormat
from guard_proxy.proxy.verdicts import VerdictService

WORDS = ["sky", " is", " blue", " because", " air", " scatters", " light", "."]


class _Counting:
    """A plain plug-in scanner that counts its calls."""

    name = "counting"
    window = 8

    def __init__(self) -> None:
        self.calls = 0

    def scan(self, text: str) -> Finding | None:
        self.calls += 1
        return None


def _generate(text: str, done: bool = False) -> bytes:
    return ndjson_encode({"model": "m", "response": text, "done": done})


def test_one_line_out_per_line_in_once_text_flows() -> None:
    releaser = make_releaser("generate")
    sent: list[bytes] = []
    pieces = [WORDS[i % len(WORDS)] for i in range(200)]
    received = {_generate(word) for word in pieces}
    for word in pieces:
        step = push(releaser, orjson.loads(_generate(word)), _generate(word))
        # Lines released whole go out as received; at most one rebuilt line per step: the
        # held-back rest of a split line rides in the next line, not in a line of its own.
        assert len([b for b in step.out if b not in received]) <= 1
        sent += step.out
    sent += releaser.finish().out
    assert len(sent) <= len(pieces)
    assert "".join(orjson.loads(b)["response"] for b in sent) == "".join(pieces)


def test_held_back_text_never_moves_into_another_field() -> None:
    releaser = make_releaser("chat")
    thinking = ["I think", " about", " it"] * 10
    content = ["The", " answer", " is", " here"] * 10
    sent: list[bytes] = []
    for key, words in (("thinking", thinking), ("content", content)):
        for word in words:
            obj = {"message": {"role": "assistant", key: word}, "done": False}
            sent += push(releaser, obj, ndjson_encode(obj)).out
    sent += releaser.finish().out
    messages = [orjson.loads(b)["message"] for b in sent]
    got_thinking = "".join(m.get("thinking", "") for m in messages)
    got_content = "".join(m.get("content", "") for m in messages)
    assert got_thinking == "".join(thinking)
    assert got_content == "".join(content)
    last_thinking = max(i for i, m in enumerate(messages) if m.get("thinking"))
    first_content = min(i for i, m in enumerate(messages) if m.get("content"))
    assert last_thinking < first_content


def test_many_pieces_queued_are_scanned_once() -> None:
    scanner = _Counting()
    verdicts = VerdictService(banned_guard(), NoCache(), Metrics(), "closed")
    releaser = Releaser(StreamGuard([scanner]), shapes.GENERATE, StreamFormat.NDJSON, verdicts)
    for word in WORDS * 5:
        assert releaser.add(orjson.loads(_generate(word)), _generate(word)) is None
    step = releaser.flush()
    assert scanner.calls == 1
    released = "".join(orjson.loads(b)["response"] for b in step.out)
    assert released == "".join(WORDS * 5)[: releaser.released]
    assert releaser.released == releaser.total - scanner.window + 1


def test_block_in_one_read_releases_what_piece_by_piece_would() -> None:
    one_by_one = make_releaser("generate")
    batched = make_releaser("generate")
    parts = ["x" * 30, "forb", "idden", "-te", "rm and more"]
    sent = b""
    for part in parts:
        step = push(one_by_one, orjson.loads(_generate(part)), _generate(part))
        sent += b"".join(step.out)
        if step.blocked is not None:
            break
    for part in parts:
        assert batched.add(orjson.loads(_generate(part)), _generate(part)) is None
    step = batched.flush()
    assert step.blocked is not None and step.blocked == one_by_one.guard.verdict
    released = "".join(orjson.loads(b)["response"] for b in step.out)
    assert released == "".join(orjson.loads(b)["response"] for b in sent.splitlines())
    assert released and set(released) == {"x"}


async def _reads(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class _Sink:
    def __init__(self) -> None:
        self.messages: list[MutableMapping[str, Any]] = []

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        self.messages.append(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)


async def test_ndjson_relay_sends_at_most_once_per_read() -> None:
    lines = [_generate(WORDS[i % len(WORDS)]) for i in range(300)] + [_generate("", True)]
    reads = [b"".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    sink = _Sink()
    outcome = await relay_stream(sink, _reads(reads), make_releaser("generate"), "/api/generate")
    assert outcome.blocked is None
    assert len(sink.messages) <= len(reads)
    assert sink.messages[-1]["more_body"] is False
    got = [orjson.loads(x) for x in sink.body.splitlines()]
    assert len(got) <= len(lines)
    assert "".join(x["response"] for x in got) == "".join(WORDS[i % len(WORDS)] for i in range(300))
    assert sink.body.endswith(lines[-1])


async def test_sse_block_in_the_last_read_sends_error_and_done_together() -> None:
    events = [
        sse_encode({"choices": [{"index": 0, "delta": {"content": t}}]})
        for t in ["safe text ", "forbid", "den-term"]
    ] + [b"data: [DONE]\n\n"]
    sink = _Sink()
    outcome = await relay_stream(
        sink,
        _reads([b"".join(events)]),
        make_releaser("openai_chat", StreamFormat.SSE),
        "/v1/chat/completions",
    )
    assert outcome.blocked == ["banned_substrings"]
    assert len(sink.messages) == 1 and sink.messages[0]["more_body"] is False
    assert b"forbid" not in sink.body
    assert sink.body.endswith(b"data: [DONE]\n\n")


def test_feed_many_matches_feeding_one_by_one() -> None:
    guard = banned_guard()
    rng = random.Random(7)
    blocked = 0
    for n in range(300):
        noise = "".join(rng.choice(["ab ", "forb", "idden", "-te", "rm", "x"]) for _ in range(30))
        cut = rng.randint(0, len(noise))
        text = noise[:cut] + TERM + noise[cut:] if n % 2 else noise
        points = sorted(rng.sample(range(1, len(text)), len(text) // 4))
        chunks = [text[a:b] for a, b in itertools.pairwise([0, *points, len(text)])]
        single, many = guard.stream(Direction.OUTPUT), guard.stream(Direction.OUTPUT)
        i = 0
        while i < len(chunks):
            batch = chunks[i : i + rng.randint(1, 4)]
            i += len(batch)
            for chunk in batch:
                expected = single.feed(chunk)
            assert many.feed_many(batch) == expected
            assert many.total == single.total
        assert many.finish() == single.finish()
        blocked += not single.verdict.allowed
    assert blocked >= 150
