"""``GET /ready`` (readiness) against real instances; ``/health`` (liveness) stays 200 throughout.

Ready: the upstream answers and, with ``cache.require_redis``, the cache serves from Redis and
a PING through the configured credentials answers. Otherwise 503 with the reasons.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.proxies import StartApp
from guard_proxy_testing.redis_server import RedisServer, free_port

from guard_proxy.cache import GuardCache
from guard_proxy.config import CacheSettings, OllamaSettings, RedisSettings
from guard_proxy.proxy.own import ReadyBody
from guard_proxy.proxy.readiness import Readiness, public_url, short_error
from guard_proxy.proxy.upstream import Upstream


def _ready(proxy: InProcessProxy) -> httpx.Response:
    return httpx.get(f"{proxy.url}/ready", timeout=10)


def _wait_ready_status(proxy: InProcessProxy, status: int, timeout: float = 30) -> dict[str, Any]:
    """Poll ``/ready`` until it answers ``status``; its body (bounded wait, no timing asserted)."""
    deadline = time.monotonic() + timeout
    response = _ready(proxy)
    while response.status_code != status and time.monotonic() < deadline:
        time.sleep(0.1)
        response = _ready(proxy)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _require_redis(app_factory: StartApp, env: dict[str, str]) -> InProcessProxy:
    return app_factory(
        config={"cache": {"backend": "redis", "require_redis": True}},
        env={"REDIS_PROBE_INTERVAL": "0.2", **env},
    )


def test_ready_on_a_healthy_memory_instance(client: httpx.Client, fake_ollama: Any) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    ReadyBody.model_validate_json(response.content, strict=True)
    assert response.json() == {
        "status": "ready",
        "reasons": [],
        "checks": {
            "upstream": {"ok": True, "url": fake_ollama.url},
            "cache": {"ok": True, "required": False, "active_backend": "memory"},
        },
    }
    head = client.head("/ready")
    assert head.status_code == 200 and head.content == b""


def test_upstream_down_is_not_ready_but_alive(app_factory: StartApp) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = app_factory(upstream=dead, env={"OLLAMA_CONNECT_TIMEOUT": "0.5"})
    response = _ready(proxy)
    assert response.status_code == 503
    ReadyBody.model_validate_json(response.content, strict=True)
    body = response.json()
    assert body["status"] == "not ready"
    assert body["reasons"] == [f"upstream {dead} not reachable"]
    assert body["checks"]["upstream"] == {"ok": False, "url": dead}
    assert body["checks"]["cache"]["ok"] is True
    assert httpx.get(f"{proxy.url}/health", timeout=10).status_code == 200


def test_require_redis_follows_redis_down_and_back(
    app_factory: StartApp, redis_server: RedisServer
) -> None:
    proxy = _require_redis(app_factory, redis_server.env())
    body = _wait_ready_status(proxy, 200)
    assert body["checks"]["cache"] == {"ok": True, "required": True, "active_backend": "redis"}

    redis_server.kill()
    body = _wait_ready_status(proxy, 503)
    assert body["status"] == "not ready"
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["cache"]["required"] is True
    assert body["checks"]["upstream"]["ok"] is True
    (reason,) = body["reasons"]
    assert reason.startswith("redis required but "), reason
    assert redis_server.address in reason, reason
    assert httpx.get(f"{proxy.url}/health", timeout=10).status_code == 200

    redis_server.restart()
    body = _wait_ready_status(proxy, 200)
    assert body["reasons"] == [] and body["checks"]["cache"]["active_backend"] == "redis"


def test_require_redis_with_a_wrong_password(
    app_factory: StartApp, redis_server: RedisServer
) -> None:
    wrong = "not-the-password-" + "x" * 8
    proxy = _require_redis(app_factory, {**redis_server.env(), "REDIS_PASSWORD": wrong})
    response = _ready(proxy)
    assert response.status_code == 503
    body = response.json()
    assert body["reasons"] == [
        f"redis required but the cache serves from memory "
        f"({redis_server.address}: authentication failed)"
    ]
    assert body["checks"]["cache"] == {"ok": False, "required": True, "active_backend": "memory"}
    assert wrong not in response.text
    assert httpx.get(f"{proxy.url}/health", timeout=10).status_code == 200


def test_require_redis_with_redis_down_at_start(app_factory: StartApp) -> None:
    port = free_port()
    proxy = _require_redis(app_factory, {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port)})
    body = _wait_ready_status(proxy, 503)
    assert body["reasons"] == [
        f"redis required but the cache serves from memory (127.0.0.1:{port}: connection refused)"
    ]


async def test_draining_is_not_ready(fake_ollama: Any) -> None:
    upstream = Upstream(OllamaSettings(url=fake_ollama.url))
    cache = GuardCache(CacheSettings(backend="memory"), RedisSettings())
    readiness = Readiness(upstream, cache, require_redis=False)
    try:
        assert (await readiness.check()).ready
        readiness.draining = True
        report = await readiness.check()
        assert not report.ready
        assert report.reasons == ["draining"]
        assert report.status == "not ready"
    finally:
        await upstream.aclose()


def test_reported_texts_hold_no_secret() -> None:
    assert public_url("http://user:s3cret@ollama:11434/x") == "http://ollama:11434/x"
    assert public_url("http://ollama:11434") == "http://ollama:11434"
    assert short_error("AuthFailed: WRONGPASS invalid username-password pair") == (
        "authentication failed"
    )
    assert short_error("ConnectionError: Error 111 connecting to h:1. Connection refused.") == (
        "connection refused"
    )
    assert short_error("TimeoutError: no answer within 0.350s") == "timeout"
    assert short_error("MasterNotFoundError: No master found (sentinels: TimeoutError)") == (
        "no primary found by the sentinels"
    )
    assert short_error("ResponseError: something s3cret") == "ResponseError"
    assert short_error(None) == "not connected"
