"""The pure-ASGI router, without a server: matching, 404/405 in each family's format, lifespan."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest

from guard_proxy.proxy.router import Router

Message = MutableMapping[str, Any]


class _Endpoint:
    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.name.encode()})


async def _noop() -> None:
    return None


def _router() -> Router:
    router = Router(startup=_noop, shutdown=_noop)
    router.add("/health", _Endpoint("health"), ["GET"])
    router.add("/api/generate", _Endpoint("generate"), ["POST"])
    router.add("/api/blobs/{digest}", _Endpoint("blob"), ["HEAD", "POST"])
    router.add("/v1/models", _Endpoint("models"), ["GET"])
    router.add("/v1/models/{model:path}", _Endpoint("model"), ["GET"])
    return router


async def _call(router: Router, method: str, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await router({"type": "http", "method": method, "path": path, "headers": []}, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent)


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/health", b"health"),
        ("HEAD", "/health", b"health"),
        ("POST", "/api/generate", b"generate"),
        ("POST", "/api/blobs/sha256:abc", b"blob"),
        ("GET", "/v1/models", b"models"),
        ("GET", "/v1/models/library/llama3.2:latest", b"model"),
    ],
)
async def test_routes_match(method: str, path: str, name: bytes) -> None:
    assert await _call(_router(), method, path) == (200, {}, name)


@pytest.mark.parametrize("path", ["/nothing", "/api/blobs/", "/api/blobs/a/b", "/"])
async def test_unknown_paths_are_404_in_the_family_format(path: str) -> None:
    status, _, body = await _call(_router(), "GET", path)
    assert status == 404
    assert orjson.loads(body) == {"error": "not found"}


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/models/"])
async def test_v1_404_is_openai_shaped(path: str) -> None:
    status, _, body = await _call(_router(), "GET", path)
    assert status == 404
    assert orjson.loads(body)["error"]["code"] == "not_found"


async def test_wrong_method_is_405_with_allow() -> None:
    status, headers, body = await _call(_router(), "GET", "/api/generate")
    assert status == 405
    assert headers[b"allow"] == b"POST"
    assert "error" in orjson.loads(body)
    status, headers, _ = await _call(_router(), "DELETE", "/health")
    assert status == 405 and headers[b"allow"] == b"GET, HEAD"


async def _lifespan(router: Router, *incoming: str) -> list[Message]:
    queue = [{"type": t} for t in incoming]
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await router({"type": "lifespan"}, receive, send)
    return sent


async def test_lifespan_runs_the_hooks() -> None:
    calls: list[str] = []

    async def startup() -> None:
        calls.append("up")

    async def shutdown() -> None:
        calls.append("down")

    router = Router(startup=startup, shutdown=shutdown)
    sent = await _lifespan(router, "lifespan.startup", "lifespan.shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["up", "down"]


async def test_failed_startup_is_reported() -> None:
    async def startup() -> None:
        raise RuntimeError("no cache")

    sent = await _lifespan(Router(startup=startup, shutdown=_noop), "lifespan.startup")
    assert sent == [{"type": "lifespan.startup.failed", "message": "RuntimeError: no cache"}]
