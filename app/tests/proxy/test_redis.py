"""The proxy with a real Redis: verdicts shared between instances, live failover and recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.processes import ADMIN_TOKEN
from guard_proxy_testing.proxies import StartApp
from guard_proxy_testing.redis_server import RedisServer


def _redis_proxy(app_factory: StartApp, server: RedisServer) -> InProcessProxy:
    return app_factory(
        config={"cache": {"backend": "auto"}},
        env={**server.env(), "REDIS_PROBE_INTERVAL": "0.2"},
    )


def _wait_backend(proxy: InProcessProxy, backend: str, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    health: dict[str, object] = {}
    while time.monotonic() < deadline:
        health = httpx.get(f"{proxy.url}/cache/health", timeout=5).json()
        if health["active_backend"] == backend:
            return health
        time.sleep(0.05)
    raise AssertionError(f"active_backend never became {backend}: {health}")


def test_two_proxies_share_verdicts(
    app_factory: StartApp, redis_server: RedisServer, marker: str
) -> None:
    first = _redis_proxy(app_factory, redis_server)
    second = _redis_proxy(app_factory, redis_server)
    _wait_backend(first, "redis")
    _wait_backend(second, "redis")
    body = {"model": "llama3.2", "prompt": f"shared verdict {marker}", "stream": False}
    one = httpx.post(f"{first.url}/api/generate", json=body, timeout=10)
    two = httpx.post(f"{second.url}/api/generate", json=body, timeout=10)
    assert one.headers["x-guard-cache"] == "miss"
    assert two.headers["x-guard-cache"] == "hit"
    assert httpx.get(f"{second.url}/cache/stats").json()["hits"] >= 1
    # Redis holds verdicts, never the prompt.
    with redis_server.client() as r:
        keys = r.keys("guard:*")
        assert keys and all(
            k.startswith("guard:input:") or k.startswith("guard:output:") for k in keys
        )
        assert not any(marker in (r.get(k) or "") for k in keys)


class _Traffic:
    """Requests in a loop from a thread, counting anything that is not the expected answer."""

    def __init__(self, proxy: InProcessProxy, marker: str) -> None:
        self.proxy = proxy
        self.marker = marker
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        with httpx.Client(base_url=self.proxy.url, timeout=30) as c:
            while not self._stop.is_set():
                i += 1
                prompt = f"traffic {self.marker} {i % 7 if i % 2 else i}"
                try:
                    r = c.post(
                        "/api/generate",
                        json={"model": "llama3.2", "prompt": prompt, "stream": False},
                    )
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        target = self.ok + count
        deadline = time.monotonic() + timeout
        while self.ok < target and time.monotonic() < deadline and not self.failures:
            time.sleep(0.02)


@pytest.mark.parametrize(
    ("fault", "recover"),
    [
        (RedisServer.kill, RedisServer.restart),
        (RedisServer.shutdown, RedisServer.restart),
        (RedisServer.freeze, RedisServer.thaw),
    ],
    ids=["killed", "shut-down", "frozen"],
)
def test_redis_fault_mid_traffic_fails_no_request(
    app_factory: StartApp,
    redis_server: RedisServer,
    marker: str,
    fault: Callable[[RedisServer], object],
    recover: Callable[[RedisServer], object],
) -> None:
    proxy = _redis_proxy(app_factory, redis_server)
    _wait_backend(proxy, "redis")
    with _Traffic(proxy, marker) as traffic:
        traffic.wait_for(20)
        fault(redis_server)
        health = _wait_backend(proxy, "memory")
        assert health["redis_connected"] is False and health["degraded"] is True
        traffic.wait_for(20)
        recover(redis_server)
        _wait_backend(proxy, "redis")
        traffic.wait_for(20)
    assert traffic.failures == []
    assert traffic.ok >= 60
    stats = httpx.get(f"{proxy.url}/cache/stats").json()
    assert stats["failovers"] >= 1 and stats["recoveries"] >= 1
    metrics = httpx.get(f"{proxy.url}/metrics").text
    assert 'guard_proxy_cache_active_backend{backend="redis"} 1.0' in metrics
    assert redis_server.password and redis_server.password not in proxy.logs()


def test_redis_refused_at_start_serves_from_memory(
    app_factory: StartApp, redis_server_factory: Callable[..., RedisServer], marker: str
) -> None:
    server = redis_server_factory(start=False)
    proxy = _redis_proxy(app_factory, server)
    health = _wait_backend(proxy, "memory")
    assert health["degraded"] is True and health["redis_connected"] is False
    response = httpx.post(
        f"{proxy.url}/api/generate",
        timeout=10,
        json={"model": "llama3.2", "prompt": f"hi {marker}", "stream": False},
    )
    assert response.status_code == 200
    server.start()
    _wait_backend(proxy, "redis")
    assert httpx.get(f"{proxy.url}/health").json()["cache"]["active_backend"] == "redis"


def test_cache_clear_through_the_proxy(
    app_factory: StartApp, redis_server: RedisServer, marker: str
) -> None:
    proxy = _redis_proxy(app_factory, redis_server)
    _wait_backend(proxy, "redis")
    with redis_server.client() as r:
        r.set("other:key", "keep me")
    httpx.post(
        f"{proxy.url}/api/generate",
        timeout=10,
        json={"model": "llama3.2", "prompt": f"to clear {marker}", "stream": False},
    )
    cleared = httpx.post(
        f"{proxy.url}/cache/clear", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()["cleared"]
    assert cleared >= 1
    with redis_server.client() as r:
        assert r.keys("guard:*") == []
        assert r.get("other:key") == "keep me"
