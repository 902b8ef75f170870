"""The route table and what is derived from it; shapes by kind; the framing by content type."""

from __future__ import annotations

from guard_proxy.config import AccessSettings
from guard_proxy.proxy.access import AccessMiddleware
from guard_proxy.proxy.framing import Ndjson, Sse, framing_for
from guard_proxy.proxy.routes import (
    GUARDED_ROUTES,
    OWN_ROUTES,
    PASSTHROUGH_ROUTES,
    admin_paths,
    own_paths,
    streamed_upload_prefixes,
)
from guard_proxy.proxy.shapes import CHAT, OPENAI_CHAT, SHAPES, Kind
from guard_proxy.proxy.streamformat import StreamFormat, stream_format


async def _noop(scope: object, receive: object, send: object) -> None:
    return None


def test_admin_and_upload_paths_come_from_the_table() -> None:
    assert admin_paths() == frozenset({"/cache/clear"})
    assert streamed_upload_prefixes() == ("/api/blobs/",)
    access = AccessMiddleware(_noop, AccessSettings(), 1000)
    assert access.admin_paths == admin_paths()
    assert access.uploads == ("/api/blobs/",)


def test_every_path_has_one_owner() -> None:
    paths = [r.path for r in OWN_ROUTES]
    paths += [s.route for s in GUARDED_ROUTES] + [r.path for r in PASSTHROUGH_ROUTES]
    assert len(paths) == len(set(paths))
    assert own_paths() == frozenset(r.path for r in OWN_ROUTES)


def test_each_kind_has_one_shape() -> None:
    assert set(SHAPES) == set(Kind)
    assert {s.kind for s in GUARDED_ROUTES} == set(Kind)


def test_a_shape_extracts_its_own_texts() -> None:
    answer = {
        "message": {
            "content": "hi",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
        }
    }
    assert CHAT.output_texts(answer) == ["hi", '{"a":1}']
    event = {"choices": [{"index": 0, "delta": {"reasoning": "r", "content": "c"}}]}
    assert OPENAI_CHAT.text_paths(event) == [
        ("choices", 0, "delta", "reasoning"),
        ("choices", 0, "delta", "content"),
    ]
    assert OPENAI_CHAT.tool_texts(event) == []


def test_the_framing_follows_the_content_type() -> None:
    assert stream_format("application/x-ndjson") is StreamFormat.NDJSON
    assert stream_format(b"text/event-stream; charset=utf-8") is StreamFormat.SSE
    assert stream_format("application/json") is None
    assert stream_format("") is None
    assert isinstance(framing_for(StreamFormat.NDJSON), Ndjson)
    assert isinstance(framing_for(StreamFormat.SSE), Sse)
    assert StreamFormat.SSE.encode({"a": 1}) == b'data: {"a":1}\n\n'
