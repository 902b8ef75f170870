"""Guarded relays of streamed answers: NDJSON (native routes) and SSE (``/v1`` routes).

Both parse by line, never by chunk (a line may span HTTP chunks), feed each piece to a
:class:`Releaser`, and send what it releases. On a block they send nothing more of the
answer, end the stream in its own format (an NDJSON ``{"error": ...}`` line; an SSE
``data: {"error": {...}}`` event then ``data: [DONE]``) and return, so that the caller closes
the upstream response and Ollama stops generating. Ollama's own mid-stream error lines and
the final ``done`` line pass through after the held-back text is released.

One loop (:func:`_relay`) serves both; a :class:`_Framing` says how lines become pieces,
how a piece is queued and how a stop is written.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from guard_proxy.proxy.asgi import Send
from guard_proxy.proxy.errors import block_body, error_body
from guard_proxy.proxy.release import Releaser, Step

UNREADABLE = "the upstream stream could not be parsed; answer withheld"
FAILED = "guard unavailable: a scanner failed (guard.fail_mode closed); answer withheld"


def ndjson_encode(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def sse_encode(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class Outcome:
    """How a guarded stream ended: ``blocked`` holds scanner names when the guard stopped it."""

    __slots__ = ("blocked", "failed")

    def __init__(self) -> None:
        self.blocked: list[str] | None = None
        self.failed = False


async def _send(send: Send, out: list[bytes], more: bool = True) -> None:
    """Send ``out`` as one body message; ``more=False`` ends the response with it."""
    if out or not more:
        body = out[0] if len(out) == 1 else b"".join(out)
        await send({"type": "http.response.body", "body": body, "more_body": more})


def _stopped(step: Step) -> bool:
    return step.blocked is not None or step.failed


_UNREADABLE = Step(failed=True)


class _Framing(Protocol):
    """How one stream format is read and ended; one instance per stream (it may hold state).

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

    def stop(self, body: dict[str, Any]) -> list[bytes]:
        """The bytes that end the stream with ``body``."""
        ...


class _Ndjson:
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

    def stop(self, body: dict[str, Any]) -> list[bytes]:
        return [ndjson_encode(body)]


class _Sse:
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

    def stop(self, body: dict[str, Any]) -> list[bytes]:
        return [sse_encode(body), b"data: [DONE]\n\n"]


async def relay_ndjson(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Relay an NDJSON answer through ``releaser``; see the module docstring."""
    return await _relay(send, chunks, releaser, path, _Ndjson())


async def relay_sse(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Relay an SSE answer through ``releaser``; see the module docstring."""
    return await _relay(send, chunks, releaser, path, _Sse())


async def _relay(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str, framing: _Framing
) -> Outcome:
    """Read ``chunks`` by line in ``framing``, send what ``releaser`` releases, stop on a block."""
    outcome = Outcome()
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
        if _stopped(step):
            await _stop(send, path, step, outcome, framing)
            return outcome
        if finished:
            await _send(send, step.out, more=False)
            return outcome
        await _send(send, step.out)
    step, finished = framing.rest(buffer, releaser)
    if step is not None and _stopped(step):
        await _stop(send, path, step, outcome, framing)
        return outcome
    if not finished:
        step = releaser.finish()
        if _stopped(step):
            await _stop(send, path, step, outcome, framing)
            return outcome
    await _send(send, step.out if step is not None else [], more=False)
    return outcome


def _end(releaser: Releaser, raw: bytes) -> tuple[Step, bool]:
    """The stream ends with ``raw`` (an upstream error or end marker) after all held-back
    text, unless that text is blocked."""
    step = releaser.finish()
    if not _stopped(step):
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
        return _UNREADABLE, False
    if not isinstance(obj, dict):
        return _UNREADABLE, False
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
        return _UNREADABLE, False
    if not isinstance(obj, dict):
        return _UNREADABLE, False
    if "error" in obj:
        return _end(releaser, raw)
    return releaser.add(obj, raw), False


async def _stop(send: Send, path: str, step: Step, outcome: Outcome, framing: _Framing) -> None:
    """End the stream after ``step``'s bytes with the block or error body, in ``framing``."""
    if step.blocked is not None:
        outcome.blocked = step.blocked.scanners
        body: dict[str, Any] = block_body(path, "output", outcome.blocked)
    else:
        outcome.failed = True
        body = framing.error_body(path, UNREADABLE if step is _UNREADABLE else FAILED)
    await _send(send, [*step.out, *framing.stop(body)], more=False)
