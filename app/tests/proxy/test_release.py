"""The releaser and the stream framings, without an app: what is sent, split and held back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from guard_proxy_testing.guards import TERM, make_releaser, push

from guard_proxy.proxy.framing import ndjson_encode, relay_stream, sse_encode
from guard_proxy.proxy.streamformat import StreamFormat


def _line(text: str, done: bool = False) -> tuple[dict[str, Any], bytes]:
    obj = {"model": "m", "response": text, "done": done}
    return obj, ndjson_encode(obj)


def test_holds_back_only_what_could_still_become_the_term() -> None:
    releaser = make_releaser("generate")
    assert releaser.guard.holdback == len(TERM) - 1  # the most it could ever hold
    obj, raw = _line("a" * 40)
    step = push(releaser, obj, raw)
    assert step.out == [raw]  # nothing in it can start the term: sent as received
    obj2, raw2 = _line("b" * 30 + "forbid")
    step2 = push(releaser, obj2, raw2)
    # "forbid" could still become the term: the piece is split before it.
    assert [orjson.loads(b)["response"] for b in step2.out] == ["b" * 30]
    obj3, raw3 = _line("dance")
    step3 = push(releaser, obj3, raw3)
    # "forbiddance" is not the term: the held rest travels in the next piece.
    assert [orjson.loads(b)["response"] for b in step3.out] == ["forbiddance"]
    obj4, raw4 = _line("x forbidden-")
    step4 = push(releaser, obj4, raw4)
    assert [orjson.loads(b)["response"] for b in step4.out] == ["x "]
    final, final_raw = _line("", done=True)
    push(releaser, final, final_raw)
    end = releaser.finish()
    assert end.out[-1] == final_raw  # the final line keeps its own bytes
    assert "".join(orjson.loads(b)["response"] for b in end.out) == "forbidden-"


def test_term_split_across_pieces_is_blocked_and_never_released() -> None:
    releaser = make_releaser("generate")
    sent = b""
    blocked = None
    for piece in ["x" * 30, "forb", "idden", "-te", "rm and more"]:
        obj, raw = _line(piece)
        step = push(releaser, obj, raw)
        sent += b"".join(step.out)
        if step.blocked is not None:
            blocked = step.blocked
            break
    assert blocked is not None and blocked.scanners == ["banned_substrings"]
    released = "".join(orjson.loads(x)["response"] for x in sent.splitlines())
    assert set(released) <= {"x"}  # not one character of the term


def test_pieces_without_text_keep_their_place() -> None:
    releaser = make_releaser("chat")
    # The text ends in "f", which could still start the term: it is held, so is the tool call.
    text = {"message": {"role": "assistant", "content": "hello world, this is long enough f"}}
    tool = {
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
        }
    }
    first = push(releaser, text, ndjson_encode(text))
    second = push(releaser, tool, ndjson_encode(tool))
    assert ndjson_encode(tool) not in first.out + second.out  # held behind the text
    end = releaser.finish()
    assert end.out[-1] == ndjson_encode(tool)


def test_tool_call_arguments_are_scanned() -> None:
    releaser = make_releaser("chat")
    tool = {
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"q": TERM}}}],
        }
    }
    assert push(releaser, tool, ndjson_encode(tool)).blocked is not None


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


class _Sink:
    def __init__(self) -> None:
        self.body = b""
        self.ended = False

    async def __call__(self, message: dict[str, Any]) -> None:
        self.body += message.get("body", b"")
        if not message.get("more_body", False):
            self.ended = True


async def test_ndjson_lines_split_across_http_chunks() -> None:
    lines = [_line(t)[1] for t in ["Hello ", "there ", "friend"]] + [_line("", done=True)[1]]
    upstream = b"".join(lines)
    sink = _Sink()
    outcome = await relay_stream(
        sink, _chunks(upstream, 7), make_releaser("generate"), "/api/generate"
    )
    assert outcome.blocked is None and sink.ended
    got = [orjson.loads(x) for x in sink.body.splitlines()]
    assert "".join(x["response"] for x in got) == "Hello there friend"
    assert got[-1]["done"] is True


async def test_sse_block_ends_with_error_event_then_done() -> None:
    events = [
        sse_encode({"choices": [{"index": 0, "delta": {"content": t}}]})
        for t in ["safe text ", "forbid", "den-term"]
    ] + [b"data: [DONE]\n\n"]
    sink = _Sink()
    outcome = await relay_stream(
        sink,
        _chunks(b"".join(events), 5),
        make_releaser("openai_chat", StreamFormat.SSE),
        "/v1/chat/completions",
    )
    assert outcome.blocked == ["banned_substrings"]
    assert sink.body.endswith(b"data: [DONE]\n\n")
    assert b"forbid" not in sink.body
    payloads = [line[6:] for line in sink.body.splitlines() if line.startswith(b"data: ")]
    assert orjson.loads(payloads[-2])["error"]["code"] == "content_policy_violation"


async def test_unparseable_upstream_line_withholds_the_answer() -> None:
    sink = _Sink()
    outcome = await relay_stream(
        sink,
        _chunks(b'{"response": "hi"}\nnot json\n', 100),
        make_releaser("generate"),
        "/api/generate",
    )
    assert outcome.failed
    assert b"could not be parsed" in sink.body


def test_released_text_before_block_is_only_safe_text() -> None:
    releaser = make_releaser("generate")
    out: list[bytes] = []
    for piece in ["y" * 50, "zz forbidden", "-term"]:
        obj, raw = _line(piece)
        step = push(releaser, obj, raw)
        out += step.out
    released = "".join(orjson.loads(x)["response"] for x in out)
    assert released.startswith("y" * 30)
    assert "f" not in released
