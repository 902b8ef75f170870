"""Guarded relays of streamed answers: NDJSON (native routes) and SSE (``/v1`` routes).

Both parse by line, never by chunk (a line may span HTTP chunks), feed each piece to a
:class:`Releaser`, and send what it releases. On a block they send nothing more of the
answer, end the stream in its own format (an NDJSON ``{"error": ...}`` line; an SSE
``data: {"error": {...}}`` event then ``data: [DONE]``) and return, so that the caller closes
the upstream response and Ollama stops generating. Ollama's own mid-stream error lines and
the final ``done`` line pass through after the held-back text is released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

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


async def relay_ndjson(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Relay an NDJSON answer through ``releaser``; see the module docstring."""
    outcome = Outcome()
    buffer = b""
    finished = False
    step: Step | None = None
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        if b"\n" not in buffer:
            continue
        *lines, buffer = buffer.split(b"\n")
        step = None
        for line in lines:
            step, finished = _ndjson_line(line, releaser)
            if step is not None:
                break
        if step is None:
            step = releaser.flush()
        if _stopped(step):
            await _stop_ndjson(send, path, step, outcome)
            return outcome
        if finished:
            await _send(send, step.out, more=False)
            return outcome
        await _send(send, step.out)
        step = None
    if buffer.strip():
        step, finished = _ndjson_line(buffer, releaser)
        if step is not None and _stopped(step):
            await _stop_ndjson(send, path, step, outcome)
            return outcome
    if not finished:
        step = releaser.finish()
        if _stopped(step):
            await _stop_ndjson(send, path, step, outcome)
            return outcome
    await _send(send, step.out if step is not None else [], more=False)
    return outcome


_UNREADABLE = Step(failed=True)


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
        step = releaser.finish()
        if not _stopped(step):
            step.out.append(raw)
        return step, True
    stop = releaser.add(obj, raw)
    if stop is not None:
        return stop, False
    if obj.get("done") is True:
        return releaser.finish(), True
    return None, False


async def _stop_ndjson(send: Send, path: str, step: Step, outcome: Outcome) -> None:
    if step.blocked is not None:
        outcome.blocked = step.blocked.scanners
        body: dict[str, Any] = block_body(path, "output", outcome.blocked)
    else:
        outcome.failed = True
        body = error_body(path, UNREADABLE if step is _UNREADABLE else FAILED)
    await _send(send, [*step.out, ndjson_encode(body)], more=False)


async def relay_sse(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Relay an SSE answer through ``releaser``; see the module docstring."""
    outcome = Outcome()
    buffer = b""
    event: list[bytes] = []
    finished = False
    step: Step | None = None
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        if b"\n" not in buffer:
            continue
        *lines, buffer = buffer.split(b"\n")
        step = None
        for line in lines:
            line = line.rstrip(b"\r")
            if line:
                event.append(line)
                continue
            if not event:
                continue
            step, finished = _sse_event(event, releaser)
            event = []
            if step is not None:
                break
        if step is None:
            step = releaser.flush()
        if _stopped(step):
            await _stop_sse(send, path, step, outcome)
            return outcome
        if finished:
            await _send(send, step.out, more=False)
            return outcome
        await _send(send, step.out)
        step = None
    if buffer.strip():
        event.append(buffer.rstrip(b"\r"))
    if event:
        step, finished = _sse_event(event, releaser)
        if step is not None and _stopped(step):
            await _stop_sse(send, path, step, outcome)
            return outcome
    if not finished:
        step = releaser.finish()
        if _stopped(step):
            await _stop_sse(send, path, step, outcome)
            return outcome
    await _send(send, step.out if step is not None else [], more=False)
    return outcome


def _sse_event(lines: list[bytes], releaser: Releaser) -> tuple[Step | None, bool]:
    """Queue one event; returns a step when it ends (or stops) the stream, and whether the
    stream is finished."""
    raw = b"\n".join(lines) + b"\n\n"
    data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
    if not data:
        return releaser.add(None, raw), False
    payload = b"\n".join(data)
    if payload.strip() == b"[DONE]":
        step = releaser.finish()
        if not _stopped(step):
            step.out.append(raw)
        return step, True
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _UNREADABLE, False
    if not isinstance(obj, dict):
        return _UNREADABLE, False
    if "error" in obj:
        step = releaser.finish()
        if not _stopped(step):
            step.out.append(raw)
        return step, True
    return releaser.add(obj, raw), False


async def _stop_sse(send: Send, path: str, step: Step, outcome: Outcome) -> None:
    if step.blocked is not None:
        outcome.blocked = step.blocked.scanners
        body = block_body(path, "output", outcome.blocked)
    else:
        outcome.failed = True
        body = error_body(
            path,
            UNREADABLE if step is _UNREADABLE else FAILED,
            openai_type="api_error",
            code="guard_unavailable",
        )
    await _send(send, [*step.out, sse_encode(body), b"data: [DONE]\n\n"], more=False)
