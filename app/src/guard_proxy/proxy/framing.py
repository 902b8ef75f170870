"""The guarded relay of a streamed answer, in its framing: NDJSON (native routes) or SSE (``/v1``).

A :class:`Framing` is one stream format, one instance per stream (it may hold a partly
read event). It owns everything format-specific: how lines become pieces for the
:class:`Releaser`, how a (split) piece is written back (:meth:`Framing.encode`, which the
releaser calls), and how a stopped stream is ended. :func:`framing_for` picks it from the
upstream's content type; the releaser is built with it, so the relay and the re-encoding
cannot disagree.

:func:`relay_stream` parses by line, never by chunk (a line may span HTTP chunks), feeds each piece
to the releaser, and sends what it releases, at most once per upstream read. On a stop it
sends nothing more of the answer, ends the stream in its own format (an NDJSON
``{"error": ...}`` line; an SSE ``data: {"error": {...}}`` event then ``data: [DONE]``) and
returns, so that the caller closes the upstream response and Ollama stops generating.
Ollama's own mid-stream error lines and the final ``done`` line pass through after the
held-back text is released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from guard_proxy.proxy.asgi import Send
from guard_proxy.proxy.errors import block_body, error_body
from guard_proxy.proxy.release import Releaser, Step, Stop

UNREADABLE = "the upstream stream could not be parsed; answer withheld"
FAILED = "guard unavailable: a scanner failed (guard.fail_mode closed); answer withheld"


def ndjson_encode(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def sse_encode(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


@dataclass(slots=True)
class Outcome:
    """How a guarded stream ended: ``stop`` is None when it was relayed to its end;
    ``scanners`` names the scanners that blocked it (``stop`` is :attr:`Stop.BLOCKED`)."""

    stop: Stop | None = None
    scanners: list[str] | None = None

    @property
    def blocked(self) -> list[str] | None:
        """The scanners that blocked the stream, or None."""
        return self.scanners

    @property
    def failed(self) -> bool:
        """The guard could not check the stream (a scanner failed closed, or unreadable)."""
        return self.stop is Stop.FAILED or self.stop is Stop.UNREADABLE


class Framing(Protocol):
    """How one stream format is read, written and ended; one instance per stream.

    :meth:`lines` and :meth:`rest` queue pieces into the releaser and return a step when a
    piece ends (or stops) the stream, and whether the stream is finished.
    """

    def encode(self, obj: dict[str, Any], /) -> bytes:
        """One piece as bytes of this format (the releaser writes split pieces with it)."""
        ...

    def lines(self, lines: list[bytes], releaser: Releaser) -> tuple[Step | None, bool]:
        """Queue the pieces of these complete lines, up to the first that returns a step."""
        ...

    def rest(self, buffer: bytes, releaser: Releaser) -> tuple[Step | None, bool]:
        """Queue what is left once the upstream ended (``buffer``: an unterminated line)."""
        ...

    def error_body(self, path: str, message: str) -> dict[str, Any]:
        """The error object that ends a stream the guard could not check."""
        ...

    def stop(self, body: dict[str, Any]) -> list[bytes]:
        """The bytes that end the stream with ``body``."""
        ...


class Ndjson:
    """One JSON object per line."""

    __slots__ = ()

    encode = staticmethod(ndjson_encode)

    def lines(self, lines: list[bytes], releaser: Releaser) -> tuple[Step | None, bool]:
        for line in lines:
            step, finished = _ndjson_line(line, releaser)
            if step is not None:
                return step, finished
        return None, False

    def rest(self, buffer: bytes, releaser: Releaser) -> tuple[Step | None, bool]:
        if buffer.strip():
            return _ndjson_line(buffer, releaser)
        return None, False

    def error_body(self, path: str, message: str) -> dict[str, Any]:
        return error_body(path, message)

    def stop(self, body: dict[str, Any]) -> list[bytes]:
        return [ndjson_encode(body)]


class Sse:
    """Events of ``field: value`` lines, each ended by an empty line."""

    __slots__ = ("event",)

    encode = staticmethod(sse_encode)

    def __init__(self) -> None:
        self.event: list[bytes] = []

    def lines(self, lines: list[bytes], releaser: Releaser) -> tuple[Step | None, bool]:
        event = self.event
        for line in lines:
            line = line.rstrip(b"\r")
            if line:
                event.append(line)
                continue
            if not event:
                continue
            step, finished = _sse_event(event, releaser)
            event = self.event = []
            if step is not None:
                return step, finished
        return None, False

    def rest(self, buffer: bytes, releaser: Releaser) -> tuple[Step | None, bool]:
        if buffer.strip():
            self.event.append(buffer.rstrip(b"\r"))
        if self.event:
            return _sse_event(self.event, releaser)
        return None, False

    def error_body(self, path: str, message: str) -> dict[str, Any]:
        return error_body(path, message, openai_type="api_error", code="guard_unavailable")

    def stop(self, body: dict[str, Any]) -> list[bytes]:
        return [sse_encode(body), b"data: [DONE]\n\n"]


def framing_for(content_type: str) -> Framing | None:
    """A fresh framing for an upstream answer of ``content_type``; None: not a stream."""
    if "ndjson" in content_type:
        return Ndjson()
    if "event-stream" in content_type:
        return Sse()
    return None


async def _send(send: Send, out: list[bytes], more: bool = True) -> None:
    """Send ``out`` as one body message; ``more=False`` ends the response with it."""
    if out or not more:
        body = out[0] if len(out) == 1 else b"".join(out)
        await send({"type": "http.response.body", "body": body, "more_body": more})


async def relay_stream(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Read ``chunks`` by line in the releaser's framing, send what it releases, stop on a
    block; see the module docstring."""
    framing = releaser.framing
    buffer = b""
    read, flush = framing.lines, releaser.flush  # bound once: this loop runs per chunk
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        if b"\n" not in buffer:
            continue
        *lines, buffer = buffer.split(b"\n")
        step, finished = read(lines, releaser)
        if step is None:
            step = flush()
        if step.stop is not None:
            return await _stop(send, path, step, framing)
        if finished:
            await _send(send, step.out, more=False)
            return Outcome()
        await _send(send, step.out)
    step, finished = framing.rest(buffer, releaser)
    if step is not None and step.stop is not None:
        return await _stop(send, path, step, framing)
    if not finished:
        step = releaser.finish()
        if step.stop is not None:
            return await _stop(send, path, step, framing)
    await _send(send, step.out if step is not None else [], more=False)
    return Outcome()


async def _stop(send: Send, path: str, step: Step, framing: Framing) -> Outcome:
    """End the stream after ``step``'s bytes with the block or error body, in ``framing``."""
    body: dict[str, Any]
    if step.stop is Stop.BLOCKED and step.verdict is not None:
        outcome = Outcome(Stop.BLOCKED, step.verdict.scanners)
        body = block_body(path, "output", step.verdict.scanners)
    else:
        outcome = Outcome(step.stop)
        message = UNREADABLE if step.stop is Stop.UNREADABLE else FAILED
        body = framing.error_body(path, message)
    await _send(send, [*step.out, *framing.stop(body)], more=False)
    return outcome


def _unreadable() -> tuple[Step, bool]:
    return Step(stop=Stop.UNREADABLE), False


def _end(releaser: Releaser, raw: bytes) -> tuple[Step, bool]:
    """The stream ends with ``raw`` (an upstream error or end marker) after all held-back
    text, unless that text is blocked."""
    step = releaser.finish()
    if step.stop is None:
        step.out.append(raw)
    return step, True


def _ndjson_line(line: bytes, releaser: Releaser) -> tuple[Step | None, bool]:
    """Queue one line; returns a step when the line ends the stream (or stops it), and
    whether the stream is finished."""
    if not line.strip():
        return None, False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _unreadable()
    if not isinstance(obj, dict):
        return _unreadable()
    raw = line + b"\n"
    if "error" in obj:
        return _end(releaser, raw)
    stop = releaser.add(obj, raw)
    if stop is not None:
        return stop, False
    if obj.get("done") is True:
        return releaser.finish(), True
    return None, False


def _sse_event(lines: list[bytes], releaser: Releaser) -> tuple[Step | None, bool]:
    """Queue one event; returns a step when it ends (or stops) the stream, and whether the
    stream is finished."""
    raw = b"\n".join(lines) + b"\n\n"
    data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
    if not data:
        return releaser.add(None, raw), False
    payload = b"\n".join(data)
    if payload.strip() == b"[DONE]":
        return _end(releaser, raw)
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _unreadable()
    if not isinstance(obj, dict):
        return _unreadable()
    if "error" in obj:
        return _end(releaser, raw)
    return releaser.add(obj, raw), False
