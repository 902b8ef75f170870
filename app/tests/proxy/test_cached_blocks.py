"""A block served from the verdict cache is the same block: same status, same body.

The first request scans (``X-Guard-Cache: miss``), the second finds the verdicts in the cache
(``hit``); both must name the scanner that blocked, with memory and with Redis as the backend.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.proxies import INPUT_TERM, OUTPUT_TERM, StartApp
from guard_proxy_testing.redis_server import RedisServer

SCANNER = "banned_substrings"


@pytest.fixture(scope="module")
def redis_proxy(app_factory: StartApp) -> Iterator[InProcessProxy]:
    """A proxy whose verdict cache is a real Redis (checked to be the active backend)."""
    server = RedisServer().start()
    try:
        proxy = app_factory(config={"cache": {"backend": "redis"}}, env=server.env())
        deadline = time.monotonic() + 30
        while httpx.get(f"{proxy.url}/cache/health", timeout=5).json()["active_backend"] != (
            "redis"
        ):
            assert time.monotonic() < deadline, "redis never became the active backend"
            time.sleep(0.05)
        yield proxy
    finally:
        server.close()


@pytest.fixture(params=["memory", "redis"])
def backend_proxy(request: pytest.FixtureRequest) -> InProcessProxy:
    name = "proxy" if request.param == "memory" else "redis_proxy"
    proxy: InProcessProxy = request.getfixturevalue(name)
    return proxy


def _body(path: str, text: str) -> dict[str, Any]:
    if path == "/api/generate":
        return {"model": "llama3.2", "prompt": text, "stream": False}
    messages = [{"role": "user", "content": text}]
    if path == "/api/chat":
        return {"model": "llama3.2", "stream": False, "messages": messages}
    return {"model": "llama3.2", "messages": messages}


def _twice(proxy: InProcessProxy, path: str, text: str) -> tuple[httpx.Response, httpx.Response]:
    with proxy.client() as client:
        first = client.post(path, json=_body(path, text))
        second = client.post(path, json=_body(path, text))
    assert first.headers["x-guard-cache"] == "miss"
    assert second.headers["x-guard-cache"] == "hit"
    assert first.status_code == second.status_code == 400
    assert second.content == first.content
    return first, second


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_native_input_block_from_cache(
    backend_proxy: InProcessProxy, marker: str, path: str
) -> None:
    _, second = _twice(backend_proxy, path, f"{marker} {INPUT_TERM}")
    assert second.json()["guard"] == {"direction": "input", "scanners": [SCANNER]}
    assert SCANNER in second.json()["error"]


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_native_output_block_from_cache(
    backend_proxy: InProcessProxy, marker: str, path: str
) -> None:
    # The input verdict is the cache header's; the answer (the same both times) is scanned on
    # the first request and found in the cache on the second.
    _, second = _twice(backend_proxy, path, f"ECHO:{marker} {OUTPUT_TERM}")
    assert second.json()["guard"] == {"direction": "output", "scanners": [SCANNER]}


@pytest.mark.parametrize("direction", ["input", "output"])
def test_v1_block_from_cache(backend_proxy: InProcessProxy, marker: str, direction: str) -> None:
    text = f"{marker} {INPUT_TERM}" if direction == "input" else f"ECHO:{marker} {OUTPUT_TERM}"
    _, second = _twice(backend_proxy, "/v1/chat/completions", text)
    error = second.json()["error"]
    assert error["code"] == "content_policy_violation"
    assert error["message"] == f"{direction} blocked by guard policy ({SCANNER})"
