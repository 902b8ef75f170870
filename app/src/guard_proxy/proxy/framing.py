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


async def _send(send: Send, out: list[bytes]) -> None:
    if out:
        body = out[0] if len(out) == 1 else b"".join(out)
        await send({"type": "http.response.body", "body": body, "more_body": True})


async def _end(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def relay_ndjson(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Relay an NDJSON answer through ``releaser``; see the module docstring."""
    outcome = Outcome()
    buffer = b""
    finished = False
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        if b"\n" not in buffer:
            continue
        *lines, buffer = buffer.split(b"\n")
        out: list[bytes] = []
        for line in lines:
            step, finished = _ndjson_line(line, releaser)
            out.extend(step.out)
            if step.blocked is not None or step.failed:
                await _send(send, out)
                await _stop_ndjson(send, path, step, outcome)
                return outcome
            if finished:
                break
        await _send(send, out)
        if finished:
            await _end(send)
            return outcome
    if buffer.strip():
        step, finished = _ndjson_line(buffer, releaser)
        if step.blocked is not None or step.failed:
            await _send(send, step.out)
            await _stop_ndjson(send, path, step, outcome)
            return outcome
        await _send(send, step.out)
    if not finished:
        step = releaser.finish()
        await _send(send, step.out)
        if step.blocked is not None or step.failed:
            await _stop_ndjson(send, path, step, outcome)
            return outcome
    await _end(send)
    return outcome


_UNREADABLE = Step(failed=True)


def _ndjson_line(line: bytes, releaser: Releaser) -> tuple[Step, bool]:
    """Handle one line; returns the step and whether the stream is finished."""
    if not line.strip():
        return Step(), False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _UNREADABLE, False
    if not isinstance(obj, dict):
        return _UNREADABLE, False
    raw = line + b"\n"
    if "error" in obj:
        step = releaser.finish()
        if step.blocked is None and not step.failed:
            step.out.append(raw)
        return step, True
    step = releaser.push(obj, raw)
    if obj.get("done") is True and step.blocked is None and not step.failed:
        final = releaser.finish()
        final.out[:0] = step.out
        return final, True
    return step, False


async def _stop_ndjson(send: Send, path: str, step: Step, outcome: Outcome) -> None:
    if step.blocked is not None:
        outcome.blocked = step.blocked.scanners
        body: dict[str, Any] = block_body(path, "output", outcome.blocked)
    else:
        outcome.failed = True
        body = error_body(path, UNREADABLE if step is _UNREADABLE else FAILED)
    await send({"type": "http.response.body", "body": ndjson_encode(body), "more_body": True})
    await _end(send)


async def relay_sse(
    send: Send, chunks: AsyncIterator[bytes], releaser: Releaser, path: str
) -> Outcome:
    """Relay an SSE answer through ``releaser``; see the module docstring."""
    outcome = Outcome()
    buffer = b""
    event: list[bytes] = []
    finished = False
    async for chunk in chunks:
        buffer = buffer + chunk if buffer else chunk
        if b"\n" not in buffer:
            continue
        *lines, buffer = buffer.split(b"\n")
        out: list[bytes] = []
        for line in lines:
            line = line.rstrip(b"\r")
            if line:
                event.append(line)
                continue
            if not event:
                continue
            step, done = _sse_event(event, releaser)
            event = []
            finished = finished or done
            out.extend(step.out)
            if step.blocked is not None or step.failed:
                await _send(send, out)
                await _stop_sse(send, path, step, outcome)
                return outcome
            if finished:
                break
        await _send(send, out)
        if finished:
            await _end(send)
            return outcome
    if buffer.strip():
        event.append(buffer.rstrip(b"\r"))
    if event:
        step, done = _sse_event(event, releaser)
        finished = finished or done
        await _send(send, step.out)
        if step.blocked is not None or step.failed:
            await _stop_sse(send, path, step, outcome)
            return outcome
    if not finished:
        step = releaser.finish()
        await _send(send, step.out)
        if step.blocked is not None or step.failed:
            await _stop_sse(send, path, step, outcome)
            return outcome
    await _end(send)
    return outcome


def _sse_event(lines: list[bytes], releaser: Releaser) -> tuple[Step, bool]:
    raw = b"\n".join(lines) + b"\n\n"
    data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
    if not data:
        return releaser.push(None, raw), False
    payload = b"\n".join(data)
    if payload.strip() == b"[DONE]":
        step = releaser.finish()
        if step.blocked is None and not step.failed:
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
        if step.blocked is None and not step.failed:
            step.out.append(raw)
        return step, True
    return releaser.push(obj, raw), False


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
    await send(
        {
            "type": "http.response.body",
            "body": sse_encode(body) + b"data: [DONE]\n\n",
            "more_body": True,
        }
    )
    await _end(send)
