"""A minimal, fast Ollama-compatible upstream for benchmarks (pure ASGI, orjson only).

Run: ``python -m uvicorn fake_upstream:app --app-dir bench --no-access-log``.
Answers without delay so the baseline measures HTTP, not a model. Streams send
``options.num_predict`` chunks (default ``FAKE_UPSTREAM_CHUNKS``, 500) back to back, or
``bench_chunk_delay_ms`` apart when the request body sets it: NDJSON on ``/api/generate`` and
``/api/chat``, SSE on ``/v1/chat/completions``. With ``bench_prose`` the chunks are English
prose cut into ~4-character tokens, and each line carries ``bench_sent``, the characters sent
so far (this token included), and ``bench_t``, when it was sent (µs since the epoch): the
streaming-lag measurement reads both back through the proxy.

The bench-only part is the pacing, the prose and the speed (orjson, no request record); the
ASGI types and body reading are the tests' fake Ollama's (``guard_proxy_testing.fake_ollama``).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

import orjson
from guard_proxy_testing.fake_ollama import Receive, Scope, Send, read_body

MODEL = "bench:latest"
ANSWER = "The sky is blue because air scatters short wavelengths more than long ones."
WORDS = ("sky", " is", " blue", " because", " air", " scatters", " light", ".")
DEFAULT_CHUNKS = int(os.environ.get("FAKE_UPSTREAM_CHUNKS", "500"))
PROSE = (
    "The quick answer is that caching verdicts saves a scan on every repeated prompt, so the "
    "proxy spends its time on new text only. When an answer streams, each token passes through "
    "the guard before it reaches the client, and the guard keeps back only what could still "
    "turn into something it must block. Ordinary sentences like this one cannot, so they flow "
    "through as they arrive. A model that writes about gardens, rivers and the weather in plain "
    "words should feel exactly as fast behind the proxy as without it, from the first word to "
    "the last one, and the reader should never notice that anything was checked at all. "
)
# ~4-character tokens, as a model's tokenizer cuts English: a leading space, then letters.
TOKENS = tuple(re.findall(r"\s*\S{1,4}", PROSE))


def _token(i: int, prose: bool) -> str:
    return TOKENS[i % len(TOKENS)] if prose else WORDS[i % len(WORDS)]


_JSON = [(b"content-type", b"application/json; charset=utf-8")]
_NDJSON = [(b"content-type", b"application/x-ndjson")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_STATS = {
    "total_duration": 1000,
    "load_duration": 10,
    "prompt_eval_count": 8,
    "prompt_eval_duration": 100,
    "eval_count": 16,
    "eval_duration": 800,
}


async def _reply(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def _native(send: Send, request: dict[str, Any], chat: bool) -> None:
    """``/api/generate`` and ``/api/chat``: one object, or NDJSON lines ending with ``done``."""
    created = _now()

    def line(text: str, done: bool) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": MODEL, "created_at": created, "done": done}
        if chat:
            obj["message"] = {"role": "assistant", "content": text}
        else:
            obj["response"] = text
        if done:
            obj["done_reason"] = "stop"
            obj.update(_STATS)
        return obj

    if request.get("stream", True) is False:
        await _reply(send, 200, _JSON, orjson.dumps(line(ANSWER, True)))
        return
    chunks = int((request.get("options") or {}).get("num_predict", DEFAULT_CHUNKS))
    delay = float(request.get("bench_chunk_delay_ms", 0)) / 1000
    prose = bool(request.get("bench_prose"))
    sent = 0
    await send({"type": "http.response.start", "status": 200, "headers": _NDJSON})
    for i in range(chunks):
        obj = line(_token(i, prose), False)
        if prose:
            sent += len(obj["message"]["content"] if chat else obj["response"])
            obj["bench_sent"] = sent
            obj["bench_t"] = time.time_ns() // 1000
        body = orjson.dumps(obj) + b"\n"
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if delay:
            await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": orjson.dumps(line("", True)) + b"\n"})


async def _openai_chat(send: Send, request: dict[str, Any]) -> None:
    """``/v1/chat/completions``: one completion, or SSE chunks then ``data: [DONE]``."""
    created = int(time.time())
    base = {"id": "chatcmpl-bench", "created": created, "model": MODEL}
    if not request.get("stream", False):
        body = {
            **base,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 8, "completion_tokens": 16, "total_tokens": 24},
        }
        await _reply(send, 200, _JSON, orjson.dumps(body))
        return
    chunks = int(request.get("max_tokens") or DEFAULT_CHUNKS)
    delay = float(request.get("bench_chunk_delay_ms", 0)) / 1000
    prose = bool(request.get("bench_prose"))
    sent = 0
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    for i in range(chunks):
        token = _token(i, prose)
        event: dict[str, Any] = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": token},
                    "finish_reason": None,
                }
            ],
        }
        if prose:
            sent += len(token)
            event["bench_sent"] = sent
            event["bench_t"] = time.time_ns() // 1000
        body = b"data: " + orjson.dumps(event) + b"\n\n"
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if delay:
            await asyncio.sleep(delay)
    final = {
        **base,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    tail = b"data: " + orjson.dumps(final) + b"\n\ndata: [DONE]\n\n"
    await send({"type": "http.response.body", "body": tail})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point; lifespan is acknowledged, other non-HTTP scopes are ignored."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"]
            await send({"type": kind + ".complete"})
            if kind == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    if method in ("GET", "HEAD"):
        if path == "/":
            await _reply(send, 200, _TEXT, b"Ollama is running")
        elif path == "/api/version":
            await _reply(send, 200, _JSON, b'{"version":"0.0.0-bench"}')
        elif path in ("/api/tags", "/api/ps"):
            await _reply(send, 200, _JSON, b'{"models":[{"name":"' + MODEL.encode() + b'"}]}')
        else:
            await _reply(send, 404, _JSON, b'{"error":"not found"}')
        return
    raw = await read_body(receive)
    try:
        request = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        await _reply(send, 400, _JSON, b'{"error":"invalid JSON"}')
        return
    if path == "/api/generate":
        await _native(send, request, chat=False)
    elif path == "/api/chat":
        await _native(send, request, chat=True)
    elif path == "/v1/chat/completions":
        await _openai_chat(send, request)
    elif path in ("/api/embed", "/api/embeddings"):
        await _reply(send, 200, _JSON, b'{"model":"bench","embeddings":[[0.1,0.2,0.3]]}')
    else:
        await _reply(send, 404, _JSON, b'{"error":"not found"}')
