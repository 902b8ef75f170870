"""A fake Ollama server for tests, benchmarks and Molecule: a pure ASGI app, stdlib only.

Run it with ``python -m uvicorn guard_proxy_testing.fake_ollama:app --port 11434`` (Molecule
copies this one file to its hosts and serves it as ``fake_ollama:app``).

It speaks Ollama's wire formats (native NDJSON streams with the final counters, ``/v1`` SSE
with ``data: [DONE]``, Ollama's error bodies) for a fixed set of models. Knobs, found in the
prompt (generate, /v1 completions) or the last message (chat):

- ``ECHO:<text>``: answer exactly ``<text>``, streamed in chunks of ``FAKE_OLLAMA_CHUNK``
  characters (default 3), so a term can be split across chunks.
- ``FAIL_MIDSTREAM``: stream two chunks, then an ``{"error": ...}`` line / SSE error event.
- ``SLOW``: stream ``FAKE_OLLAMA_SLOW_CHUNKS`` (default 300) chunks ``FAKE_OLLAMA_SLOW_DELAY``
  seconds apart (default 0.1): long enough for disconnect tests.
- ``STATUS:<code>``: answer with that HTTP status and an Ollama-style error body.
- ``TOOLCALL``: the chat answer carries a ``get_weather`` tool call.
- ``BREAK_BODY``: a complete (not streamed) answer sends its 200 head with the full
  ``Content-Length`` and half the body, then drops the connection (Ollama dying mid-answer).

Other env knobs: ``FAKE_OLLAMA_MODELS`` (comma-separated; default below),
``FAKE_OLLAMA_DELAY`` (seconds before every answer; default 0). The knobs are read from
``os.environ``, or from the mapping given as ``FakeOllama(environ=...)`` (several fakes with
different knobs in one process, as the tests run them).

Introspection (not part of Ollama): ``GET /_fake/requests`` lists received requests (method,
path, JSON body or body size, stream outcome), ``DELETE /_fake/requests`` forgets them, and
``GET /_fake/stats`` counts streams started, completed and aborted (the client went away).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

VERSION = "0.12.6"
MIDSTREAM_ERROR = "an error was encountered while running the model: unexpected EOF"
DEFAULT_ANSWER = "The sky is blue because of Rayleigh scattering."
_STATUS = re.compile(r"STATUS:(\d{3})")
_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


_ENVIRON: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("fake_ollama_env")


def _env() -> Mapping[str, str]:
    """The knobs of the instance answering this request (``os.environ`` by default)."""
    return _ENVIRON.get(os.environ)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _models() -> list[str]:
    raw = _env().get("FAKE_OLLAMA_MODELS", "llama3.2:latest,qwen2.5:0.5b,nomic-embed-text:latest")
    return [_full_name(m.strip()) for m in raw.split(",") if m.strip()]


def _full_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _chunk_size() -> int:
    return max(1, int(_env().get("FAKE_OLLAMA_CHUNK", "3")))


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


class _State:
    def __init__(self, environ: Mapping[str, str]) -> None:
        token = _ENVIRON.set(environ)
        try:
            self.models = _models()
        finally:
            _ENVIRON.reset(token)
        self.blobs: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.stats = {"streams_started": 0, "streams_completed": 0, "streams_aborted": 0}


class _Disconnect:
    """Watch ``receive`` for ``http.disconnect`` while a response streams."""

    def __init__(self, receive: Receive) -> None:
        self.gone = asyncio.Event()
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return

    def stop(self) -> None:
        self._task.cancel()


class FakeOllama:
    """The ASGI application; its knobs come from ``environ`` (default ``os.environ``)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.state = _State(self.environ)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        _ENVIRON.set(self.environ)  # this request's context (and the tasks it starts)
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if path.startswith("/_fake/"):
            await self._introspect(method, path, send)
            return
        if path.startswith("/api/blobs/"):
            await self._blob(method, path[len("/api/blobs/") :], scope, receive, send)
            return
        raw = await read_body(receive)
        record: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": scope["query_string"].decode(),
        }
        record["headers"] = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.state.requests.append(record)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                record["body_size"] = len(raw)
                if path.startswith("/v1/"):
                    await _v1_error(send, 400, "invalid character in request body")
                else:
                    await _json(
                        send, 400, {"error": "invalid character 'x' looking for beginning of value"}
                    )
                return
        record["body"] = body
        delay = float(_env().get("FAKE_OLLAMA_DELAY", "0"))
        if delay:
            await asyncio.sleep(delay)
        handler = _ROUTES.get((method, path)) or (
            _ROUTES.get(("GET", path)) if method == "HEAD" else None
        )
        if handler is None and path.startswith("/v1/models/") and method == "GET":
            await self._v1_model(path[len("/v1/models/") :], send)
            return
        if handler is None:
            allowed = any(p == path for (_, p) in _ROUTES)
            if allowed:
                await _json(send, 405, {"error": "405 method not allowed"}, text=True)
            else:
                await _plain(send, 404, "404 page not found")
            return
        await handler(self, body if isinstance(body, dict) else {}, record, receive, send, method)

    # ------------------------------------------------------------------ introspection

    async def _introspect(self, method: str, path: str, send: Send) -> None:
        if path == "/_fake/requests" and method == "DELETE":
            self.state.requests.clear()
            await _json(send, 200, {"cleared": True})
        elif path == "/_fake/requests":
            await _json(send, 200, {"requests": self.state.requests})
        elif path == "/_fake/stats":
            await _json(send, 200, self.state.stats)
        else:
            await _plain(send, 404, "404 page not found")

    # ------------------------------------------------------------------ blobs

    async def _blob(
        self, method: str, digest: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.state.requests.append({"method": method, "path": f"/api/blobs/{digest}"})
        match = _DIGEST.match(digest)
        if match is None:
            await _json(send, 400, {"error": "invalid digest format"})
            return
        if method == "HEAD":
            await _empty(send, 200 if match.group(1) in self.state.blobs else 404)
            return
        if method != "POST":
            await _json(send, 405, {"error": "405 method not allowed"})
            return
        sha = hashlib.sha256()
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            sha.update(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                break
        self.state.requests[-1]["body_size"] = size
        got = sha.hexdigest()
        if got != match.group(1):
            await _json(
                send,
                400,
                {
                    "error": f'digest mismatch, expected "sha256:{match.group(1)}", '
                    f'got "sha256:{got}"'
                },
            )
            return
        self.state.blobs.add(got)
        await _empty(send, 201)

    # ------------------------------------------------------------------ helpers

    def _model_or_none(self, name: Any) -> str | None:
        if not isinstance(name, str) or not name:
            return None
        full = _full_name(name)
        return full if full in self.state.models else None

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        record: dict[str, Any],
        content_type: str,
        items: Any,
    ) -> None:
        """Send ``items`` (async iterator of bytes) chunked, watching for a disconnect."""
        self.state.stats["streams_started"] += 1
        record["stream_outcome"] = "started"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode()), (b"x-fake-ollama", b"1")],
            }
        )
        watch = _Disconnect(receive)
        try:
            async for chunk in items:
                if watch.gone.is_set():
                    self.state.stats["streams_aborted"] += 1
                    record["stream_outcome"] = "aborted"
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.state.stats["streams_completed"] += 1
            record["stream_outcome"] = "completed"
        finally:
            watch.stop()

    async def slow_complete(self, receive: Receive, record: dict[str, Any], text: str) -> bool:
        """For ``SLOW`` complete answers: think for a while; False if the client left."""
        if "SLOW" not in text:
            return True
        record["stream_outcome"] = "started"
        seconds = _delay_for(text) * int(_env().get("FAKE_OLLAMA_SLOW_CHUNKS", "300"))
        watch = _Disconnect(receive)
        try:
            await asyncio.wait_for(watch.gone.wait(), timeout=seconds)
        except TimeoutError:
            record["stream_outcome"] = "completed"
            return True
        finally:
            watch.stop()
        self.state.stats["streams_aborted"] += 1
        record["stream_outcome"] = "aborted"
        return False

    async def _v1_model(self, name: str, send: Send) -> None:
        model = self._model_or_none(name)
        if model is None:
            await _v1_error(send, 404, f'model "{name}" not found')
            return
        await _json(send, 200, _v1_model_obj(model))


# ---------------------------------------------------------------------- knobs and answers


def _prompt_knob_text(text: str) -> str:
    if "ECHO:" in text:
        return text.split("ECHO:", 1)[1]
    return DEFAULT_ANSWER


def _chunks(text: str) -> list[str]:
    if "SLOW" in text and "ECHO:" not in text:
        count = int(_env().get("FAKE_OLLAMA_SLOW_CHUNKS", "300"))
        return ["tick "] * count
    size = _chunk_size()
    answer = _prompt_knob_text(text)
    return [answer[i : i + size] for i in range(0, len(answer), size)] or [""]


def _delay_for(text: str) -> float:
    return float(_env().get("FAKE_OLLAMA_SLOW_DELAY", "0.1")) if "SLOW" in text else 0.0


def _status_knob(text: str) -> int | None:
    match = _STATUS.search(text)
    return int(match.group(1)) if match else None


def _counters(prompt: str, answer_chunks: int) -> dict[str, Any]:
    return {
        "total_duration": 123456789,
        "load_duration": 1234567,
        "prompt_eval_count": max(1, len(prompt) // 4),
        "prompt_eval_duration": 2345678,
        "eval_count": answer_chunks,
        "eval_duration": 98765432,
    }


def _last_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        return ""
    content = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


# ---------------------------------------------------------------------- native routes


async def _root(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    await _plain(send, 200, "Ollama is running", head=method == "HEAD")


async def _version(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    await _json(send, 200, {"version": VERSION}, head=method == "HEAD")


def _details(model: str) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "3.2B",
        "quantization_level": "Q4_K_M",
    }


def _digest_of(model: str) -> str:
    return hashlib.sha256(model.encode()).hexdigest()


async def _tags(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    models = [
        {
            "name": m,
            "model": m,
            "modified_at": "2026-01-01T00:00:00.000000000Z",
            "size": 2019393189,
            "digest": _digest_of(m),
            "details": _details(m),
        }
        for m in app.state.models
    ]
    await _json(send, 200, {"models": models})


async def _ps(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    m = app.state.models[0]
    models = [
        {
            "name": m,
            "model": m,
            "size": 5137025024,
            "digest": _digest_of(m),
            "details": _details(m),
            "expires_at": "2026-12-31T00:00:00.000000000Z",
            "size_vram": 5137025024,
            "context_length": 4096,
        }
    ]
    await _json(send, 200, {"models": models})


async def _show(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    name = body.get("model") or body.get("name")
    model = app._model_or_none(name)
    if model is None:
        await _json(send, 404, {"error": f"model '{name}' not found"})
        return
    await _json(
        send,
        200,
        {
            "modelfile": f"FROM {model}\n",
            "parameters": 'stop "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": _details(model),
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
            "capabilities": ["completion", "tools"],
            "modified_at": "2026-01-01T00:00:00.000000000Z",
        },
    )


async def _copy(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    source = app._model_or_none(body.get("source"))
    if source is None:
        await _json(send, 404, {"error": f"model '{body.get('source')}' not found"})
        return
    dest = body.get("destination")
    if not isinstance(dest, str) or not dest:
        await _json(send, 400, {"error": "destination is required"})
        return
    if _full_name(dest) not in app.state.models:
        app.state.models.append(_full_name(dest))
    await _empty(send, 200)


async def _delete(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    name = body.get("model") or body.get("name")
    model = app._model_or_none(name)
    if model is None:
        await _json(send, 404, {"error": f"model '{name}' not found"})
        return
    app.state.models.remove(model)
    await _empty(send, 200)


async def _progress(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    name = body.get("model") or body.get("name") or ""
    if not isinstance(name, str) or not name:
        await _json(send, 400, {"error": "model is required"})
        return
    digest = "sha256:" + _digest_of(name)
    lines: list[dict[str, Any]] = [{"status": "pulling manifest"}]
    total = 3000
    for done in (0, 1000, 2000, 3000):
        lines.append(
            {
                "status": f"pulling {digest[7:19]}",
                "digest": digest,
                "total": total,
                "completed": done,
            }
        )
    lines += [
        {"status": "verifying sha256 digest"},
        {"status": "writing manifest"},
        {"status": "success"},
    ]
    if record["path"] == "/api/pull" and _full_name(name) not in app.state.models:
        app.state.models.append(_full_name(name))
    if body.get("stream") is False:
        await _json(send, 200, {"status": "success"})
        return

    async def items() -> Any:
        for line in lines:
            yield _dumps(line).encode() + b"\n"
            await asyncio.sleep(0)

    await app._stream(receive, send, record, "application/x-ndjson", items())


async def _generate(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    model = app._model_or_none(body.get("model"))
    if not body.get("model"):
        await _json(send, 400, {"error": "model is required"})
        return
    if model is None:
        await _json(send, 404, {"error": _not_found(body.get("model"))})
        return
    prompt = body.get("prompt", "") or ""
    if not isinstance(prompt, str):
        await _json(send, 400, {"error": "json: cannot unmarshal into prompt"})
        return
    status = _status_knob(prompt)
    if status:
        await _json(send, status, {"error": f"fake upstream error {status}"})
        return
    base = {"model": body["model"], "created_at": _now_iso()}
    if not prompt:
        await _json(send, 200, {**base, "response": "", "done": True, "done_reason": "load"})
        return
    chunks = _chunks(prompt)
    final = {
        **base,
        "response": "",
        "done": True,
        "done_reason": "stop",
        "context": [1, 2, 3],
        **_counters(prompt, len(chunks)),
    }
    if body.get("stream", True) is False:
        if not await app.slow_complete(receive, record, prompt):
            return
        await _json(send, 200, {**final, "response": "".join(chunks)}, cut="BREAK_BODY" in prompt)
        return
    delay = _delay_for(prompt)

    async def items() -> Any:
        for i, piece in enumerate(chunks):
            if "FAIL_MIDSTREAM" in prompt and i == 2:
                yield (_dumps({"error": MIDSTREAM_ERROR}).encode() + b"\n")
                return
            yield _dumps({**base, "response": piece, "done": False}).encode() + b"\n"
            await asyncio.sleep(delay)
        yield _dumps(final).encode() + b"\n"

    await app._stream(receive, send, record, "application/x-ndjson", items())


async def _chat(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    if not body.get("model"):
        await _json(send, 400, {"error": "model is required"})
        return
    model = app._model_or_none(body.get("model"))
    if model is None:
        await _json(send, 404, {"error": _not_found(body.get("model"))})
        return
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        await _json(send, 400, {"error": "json: cannot unmarshal into messages"})
        return
    base = {"model": body["model"], "created_at": _now_iso()}
    if not messages:
        await _json(
            send,
            200,
            {
                **base,
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "load",
            },
        )
        return
    last = _last_text(messages)
    status = _status_knob(last)
    if status:
        await _json(send, status, {"error": f"fake upstream error {status}"})
        return
    chunks = _chunks(last)
    tool_calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    final = {
        **base,
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        **_counters(last, len(chunks)),
    }
    if body.get("stream", True) is False:
        if not await app.slow_complete(receive, record, last):
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(chunks)}
        if "TOOLCALL" in last:
            message = {"role": "assistant", "content": "", "tool_calls": tool_calls}
        await _json(send, 200, {**final, "message": message}, cut="BREAK_BODY" in last)
        return
    delay = _delay_for(last)

    async def items() -> Any:
        if "TOOLCALL" in last:
            msg = {"role": "assistant", "content": "", "tool_calls": tool_calls}
            yield _dumps({**base, "message": msg, "done": False}).encode() + b"\n"
        else:
            for i, piece in enumerate(chunks):
                if "FAIL_MIDSTREAM" in last and i == 2:
                    yield (_dumps({"error": MIDSTREAM_ERROR}).encode() + b"\n")
                    return
                msg = {"role": "assistant", "content": piece}
                yield _dumps({**base, "message": msg, "done": False}).encode() + b"\n"
                await asyncio.sleep(delay)
        yield _dumps(final).encode() + b"\n"

    await app._stream(receive, send, record, "application/x-ndjson", items())


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:8]]


async def _embed(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    model = app._model_or_none(body.get("model"))
    if model is None:
        await _json(send, 404, {"error": _not_found(body.get("model"))})
        return
    inputs = body.get("input", "")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    await _json(
        send,
        200,
        {
            "model": body["model"],
            "embeddings": [_embedding(t) for t in inputs],
            "total_duration": 14143917,
            "load_duration": 1019500,
            "prompt_eval_count": 8,
        },
    )


async def _embeddings(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    model = app._model_or_none(body.get("model"))
    if model is None:
        await _json(send, 404, {"error": _not_found(body.get("model"))})
        return
    await _json(send, 200, {"embedding": _embedding(str(body.get("prompt", "")))})


# ---------------------------------------------------------------------- OpenAI-compatible routes


def _v1_model_obj(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1767225600, "owned_by": "library"}


async def _v1_models(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    await _json(send, 200, {"object": "list", "data": [_v1_model_obj(m) for m in app.state.models]})


def _usage(prompt: str, chunks: int) -> dict[str, int]:
    p = max(1, len(prompt) // 4)
    return {"prompt_tokens": p, "completion_tokens": chunks, "total_tokens": p + chunks}


async def _v1_chat(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    await _v1_generate(app, body, record, receive, send, chat=True)


async def _v1_completions(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    await _v1_generate(app, body, record, receive, send, chat=False)


async def _v1_generate(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, *, chat: bool
) -> None:
    if app._model_or_none(body.get("model")) is None:
        await _v1_error(send, 404, _not_found(body.get("model")))
        return
    if chat:
        text = _last_text(body.get("messages"))
    else:
        prompt = body.get("prompt", "")
        text = prompt if isinstance(prompt, str) else " ".join(str(p) for p in prompt)
    status = _status_knob(text)
    if status:
        await _v1_error(send, status, f"fake upstream error {status}")
        return
    chunks = _chunks(text)
    ident = ("chatcmpl-" if chat else "cmpl-") + str(len(app.state.requests))
    obj = "chat.completion" if chat else "text_completion"
    base = {
        "id": ident,
        "object": obj,
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_ollama",
    }
    tool = "TOOLCALL" in text and chat
    tool_calls = [
        {
            "id": "call_1",
            "index": 0,
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    if not body.get("stream", False):
        answer = "".join(chunks)
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": answer}
            if tool:
                message = {"role": "assistant", "content": "", "tool_calls": tool_calls}
            choice = {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if tool else "stop",
            }
        else:
            choice = {"text": answer, "index": 0, "finish_reason": "stop"}
        answer_body = {**base, "choices": [choice], "usage": _usage(text, len(chunks))}
        await _json(send, 200, answer_body, cut="BREAK_BODY" in text)
        return
    base["object"] = "chat.completion.chunk" if chat else "text_completion"
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    delay = _delay_for(text)

    def event(data: Any) -> bytes:
        return b"data: " + _dumps(data).encode() + b"\n\n"

    async def items() -> Any:
        pieces = [] if tool else chunks
        if tool:
            delta = {"role": "assistant", "content": "", "tool_calls": tool_calls}
            yield event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        for i, piece in enumerate(pieces):
            if "FAIL_MIDSTREAM" in text and i == 2:
                yield event(
                    {
                        "error": {
                            "message": "an error was encountered while running the model",
                            "type": "api_error",
                            "param": None,
                            "code": None,
                        }
                    }
                )
                return
            if chat:
                choice: dict[str, Any] = {
                    "index": 0,
                    "delta": {"role": "assistant", "content": piece},
                    "finish_reason": None,
                }
            else:
                choice = {"text": piece, "index": 0, "finish_reason": None}
            yield event({**base, "choices": [choice]})
            await asyncio.sleep(delay)
        reason = "tool_calls" if tool else "stop"
        if chat:
            last = {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": reason,
            }
        else:
            last = {"text": "", "index": 0, "finish_reason": reason}
        yield event({**base, "choices": [last]})
        if include_usage:
            yield event({**base, "choices": [], "usage": _usage(text, len(chunks))})
        yield b"data: [DONE]\n\n"

    await app._stream(receive, send, record, "text/event-stream", items())


async def _v1_embeddings(
    app: FakeOllama, body: Any, record: Any, receive: Receive, send: Send, method: str
) -> None:
    if app._model_or_none(body.get("model")) is None:
        await _v1_error(send, 404, _not_found(body.get("model")))
        return
    inputs = body.get("input", "")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    data = [
        {"object": "embedding", "embedding": _embedding(str(t)), "index": i}
        for i, t in enumerate(inputs)
    ]
    await _json(
        send,
        200,
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        },
    )


_Handler = Callable[[FakeOllama, Any, Any, Receive, Send, str], Awaitable[None]]
_ROUTES: dict[tuple[str, str], _Handler] = {
    ("GET", "/"): _root,
    ("GET", "/api/version"): _version,
    ("GET", "/api/tags"): _tags,
    ("GET", "/api/ps"): _ps,
    ("POST", "/api/show"): _show,
    ("POST", "/api/copy"): _copy,
    ("DELETE", "/api/delete"): _delete,
    ("POST", "/api/create"): _progress,
    ("POST", "/api/pull"): _progress,
    ("POST", "/api/push"): _progress,
    ("POST", "/api/generate"): _generate,
    ("POST", "/api/chat"): _chat,
    ("POST", "/api/embed"): _embed,
    ("POST", "/api/embeddings"): _embeddings,
    ("POST", "/v1/chat/completions"): _v1_chat,
    ("POST", "/v1/completions"): _v1_completions,
    ("POST", "/v1/embeddings"): _v1_embeddings,
    ("GET", "/v1/models"): _v1_models,
}


# ---------------------------------------------------------------------- ASGI helpers


async def read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _json(
    send: Send,
    status: int,
    data: Any,
    *,
    head: bool = False,
    text: bool = False,
    cut: bool = False,
) -> None:
    """Send ``data``; with ``cut``, only half the declared body, then the connection drops."""
    body = _dumps(data).encode()
    ctype = b"text/plain" if text else b"application/json; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    if cut:
        # Returning with the body incomplete makes uvicorn close the connection.
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        return
    await send({"type": "http.response.body", "body": b"" if head else body})


def _not_found(model: Any) -> str:
    """Ollama's message for a model it does not have (native and /v1 alike)."""
    return f'model "{model}" not found, try pulling it first'


async def _v1_error(send: Send, status: int, message: str) -> None:
    etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    await _json(
        send, status, {"error": {"message": message, "type": etype, "param": None, "code": None}}
    )


async def _plain(send: Send, status: int, text: str, *, head: bool = False) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _empty(send: Send, status: int) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]}
    )
    await send({"type": "http.response.body", "body": b""})


app = FakeOllama()
