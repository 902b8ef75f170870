"""The guarded relay of a streamed answer, in its framing: NDJSON (native routes) or SSE (``/v1``).

A :class:`Framing` reads one stream format, one instance per stream (it may hold a partly
read event): how lines become pieces for the :class:`Releaser`, and the error object that
ends a stream the guard could not check. The format itself (a
:class:`~guard_proxy.proxy.streamformat.StreamFormat`, decided once from the upstream's
content type) is the releaser's: it writes split pieces back in it, and
:func:`relay_stream` reads the stream with :func:`framing_for` that format and ends it in
it, so the relay and the re-encoding cannot disagree. This module drives the releaser;
:mod:`guard_proxy.proxy.release` knows nothing of it.

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
from guard_proxy.proxy.streamformat import StreamFormat, ndjson_encode, sse_encode

__all__ = [
    "Framing",
    "Ndjson",
    "Outcome",
    "Sse",
    "framing_for",
    "ndjson_encode",
    "relay_stream",
    "sse_encode",
]

UNREADABLE = "the upstream stream could not be parsed; answer withheld"
FAILED = "guard unavailable: a scanner failed (guard.fail_mode closed); answer withheld"


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
    """How one stream format is read; one instance per stream.

    :meth:`lines` and :meth:`rest` queue pieces into the releaser and return a step when a
    piece ends (or stops) the stream, and whether the stream is finished.
    """

    def lines(self, lines: list[bytes], releaser: Releaser) -> tuple[Step | None, bool]:
        """Queue the pieces of these complete lines, up to the first that returns a step."""
        ...

    def rest(self, buffer: bytes, releaser: Releaser) -> tuple[Step | None, bool]:
        """Queue what is left once the upstream ended (``buffer``: an unterminated line)."""
        ...

    def error_body(self, path: str, message: str) -> dict[str, Any]:
        """The error object that ends a stream the guard could not check."""
        ...


class Ndjson:
    """One JSON object per line."""

    __slots__ = ()

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


class Sse:
    """Events of ``field: value`` lines, each ended by an empty line."""

    __slots__ = ("event",)

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


def framing_for(fmt: StreamFormat) -> Framing:
    """A fresh reader of a stream in ``fmt``."""
    return Ndjson() if fmt is StreamFormat.NDJSON else Sse()


async def _send(send: Send, out: list[bytes], more: bool = True) -> None:
    """Send ``out`` as one body message; ``more=False`` ends the response with it."""
    if out or not more:
        body = out[0] if len(out) == 1 else b"".join(out)
        await send({"type": "http.response.body", "body": body, "more_body": more})


async def relay_stream(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Read ``chunks`` by line in the releaser's format, send what it releases, stop on a
    block; see the module docstring."""
    fmt = releaser.format
    framing = framing_for(fmt)
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
            return await _stop(send, path, step, framing, fmt)
        if finished:
            await _send(send, step.out, more=False)
            return Outcome()
        await _send(send, step.out)
    step, finished = framing.rest(buffer, releaser)
    if step is not None and step.stop is not None:
        return await _stop(send, path, step, framing, fmt)
    if not finished:
        step = releaser.finish()
        if step.stop is not None:
            return await _stop(send, path, step, framing, fmt)
    await _send(send, step.out if step is not None else [], more=False)
    return Outcome()


async def _stop(send: Send, path: str, step: Step, framing: Framing, fmt: StreamFormat) -> Outcome:
    """End the stream after ``step``'s bytes with the block or error body, in ``framing``."""
    body: dict[str, Any]
    if step.stop is Stop.BLOCKED and step.verdict is not None:
        outcome = Outcome(Stop.BLOCKED, step.verdict.scanners)
        body = block_body(path, "output", step.verdict.scanners)
    else:
        outcome = Outcome(step.stop)
        message = UNREADABLE if step.stop is Stop.UNREADABLE else FAILED
        body = framing.error_body(path, message)
    await _send(send, [*step.out, *fmt.end(body)], more=False)
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
