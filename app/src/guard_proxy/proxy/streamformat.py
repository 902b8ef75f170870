"""The two streamed answer formats, NDJSON and SSE: which one a response is, how each is written.

:func:`stream_format` decides it once per response, from the upstream's ``Content-Type``
(the routes that relay Ollama's answers record it on the request's
:class:`~guard_proxy.proxy.state.RequestInfo`; the request log and the drain read it from
there). A :class:`StreamFormat` writes one object (:meth:`~StreamFormat.encode`) and ends a
stream with one (:meth:`~StreamFormat.end`: an NDJSON line; an SSE event then
``data: [DONE]``). Reading a stream is :mod:`guard_proxy.proxy.framing`'s.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson

__all__ = ["StreamFormat", "ndjson_encode", "sse_encode", "stream_format"]


def ndjson_encode(obj: dict[str, Any]) -> bytes:
    """One object as an NDJSON line."""
    return orjson.dumps(obj) + b"\n"


def sse_encode(obj: dict[str, Any]) -> bytes:
    """One object as an SSE ``data:`` event."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class StreamFormat(Enum):
    """A streamed answer's format."""

    NDJSON = "ndjson"
    SSE = "sse"

    def encode(self, obj: dict[str, Any]) -> bytes:
        """``obj`` as one piece of this format."""
        return ndjson_encode(obj) if self is StreamFormat.NDJSON else sse_encode(obj)

    def end(self, body: dict[str, Any]) -> list[bytes]:
        """The bytes that end a stream of this format with ``body`` (an error or a block)."""
        if self is StreamFormat.NDJSON:
            return [ndjson_encode(body)]
        return [sse_encode(body), b"data: [DONE]\n\n"]

    def boundary_after(self, tail: bytes) -> bytes:
        """What to write after a body that ended with ``tail`` so the next piece starts a new
        line (NDJSON) or event (SSE); ``tail`` holds at least the body's last two bytes."""
        if not tail:
            return b""
        if self is StreamFormat.NDJSON:
            return b"" if tail.endswith(b"\n") else b"\n"
        if tail.endswith(b"\n\n"):
            return b""
        return b"\n" if tail.endswith(b"\n") else b"\n\n"


def stream_format(content_type: str | bytes) -> StreamFormat | None:
    """The format a ``Content-Type`` announces; None: not a stream."""
    value = content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type
    if "ndjson" in value:
        return StreamFormat.NDJSON
    if "event-stream" in value:
        return StreamFormat.SSE
    return None
