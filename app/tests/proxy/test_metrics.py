"""The metrics the dashboard and the alert rules need, read from a real proxy's ``/metrics``.

Streams (time to first chunk, duration), requests in flight, readiness gauges, the cache's
degraded flag and hits per level, blocked requests per direction and the verdict wait, each
checked on ``guard-proxy serve`` over the fake Ollama (and a real redis-server where the
cache matters). ``Metrics.scrape`` is checked alone for what a test server cannot easily
show (draining, a cache or readiness that raises).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.processes import free_port
from guard_proxy_testing.prom import sample
from guard_proxy_testing.proxies import INPUT_TERM, StartApp
from guard_proxy_testing.redis_server import RedisServer

from guard_proxy.api_models import (
    CacheStatsBody,
    ReadyBody,
    ReadyCache,
    ReadyChecks,
    ReadyUpstream,
)
from guard_proxy.cli._prometheus import parse
from guard_proxy.proxy.metrics import Metrics


def _scrape(proxy: InProcessProxy) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{proxy.url}/metrics", timeout=10).text
    return {(name, frozenset(labels.items())): value for name, labels, value in parse(text)}


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _generate(client: httpx.Client, prompt: str, stream: bool) -> httpx.Response:
    return client.post(
        "/api/generate", json={"model": "llama3.2", "prompt": prompt, "stream": stream}
    )


def test_streams_are_timed_to_first_chunk_and_to_the_end(
    app_factory: StartApp, marker: str
) -> None:
    proxy = app_factory()
    with proxy.client() as c:
        assert _generate(c, f"ECHO:{marker} a streamed answer", stream=True).status_code == 200
        assert _generate(c, f"{marker} not streamed", stream=False).status_code == 200
        sse = c.post(
            "/v1/chat/completions",
            json={
                "model": "llama3.2",
                "messages": [{"role": "user", "content": f"ECHO:{marker} sse"}],
                "stream": True,
            },
        )
        assert sse.status_code == 200
    m = _scrape(proxy)
    route = "/api/generate"
    assert _value(m, "guard_proxy_stream_duration_seconds_count", route=route) == 1
    assert _value(m, "guard_proxy_stream_first_chunk_seconds_count", route=route) == 1
    first = _value(m, "guard_proxy_stream_first_chunk_seconds_sum", route=route)
    whole = _value(m, "guard_proxy_stream_duration_seconds_sum", route=route)
    assert 0 < first <= whole
    assert _value(m, "guard_proxy_request_duration_seconds_count", route=route) == 2
    sse_route = "/v1/chat/completions"
    assert _value(m, "guard_proxy_stream_duration_seconds_count", route=sse_route) == 1
    assert _value(m, "guard_proxy_stream_first_chunk_seconds_count", route=sse_route) == 1
    # Each guarded request waited for its input verdict; the complete answer for its output.
    assert _value(m, "guard_proxy_verdict_duration_seconds_count", direction="input") == 3
    assert _value(m, "guard_proxy_verdict_duration_seconds_count", direction="output") == 1


def test_blocked_requests_are_counted_once_per_request(app_factory: StartApp, marker: str) -> None:
    proxy = app_factory(
        config={"guard": {"input": {"regex": {"patterns": [r"kab(o)+m"]}}}},
    )
    with proxy.client() as c:
        assert _generate(c, f"{marker} {INPUT_TERM}", stream=False).status_code == 400
    m = _scrape(proxy)
    assert _value(m, "guard_proxy_blocked_requests_total", direction="input") == 1
    # Two scanners found it: one block per scanner, one blocked request.
    blocks = _value(m, "guard_proxy_blocks_total", scanner="banned_substrings", direction="input")
    assert blocks + _value(m, "guard_proxy_blocks_total", scanner="regex", direction="input") == 2


def test_requests_in_flight_count_an_open_stream(app_factory: StartApp, marker: str) -> None:
    proxy = app_factory()
    assert _value(_scrape(proxy), "guard_proxy_requests_in_flight") == 0
    started = threading.Event()
    stop = threading.Event()

    def stream() -> None:
        with proxy.client() as c:
            body = {"model": "llama3.2", "prompt": f"{marker} SLOW", "stream": True}
            with c.stream("POST", "/api/generate", json=body) as response:
                for _ in response.iter_bytes():
                    started.set()
                    if stop.is_set():
                        break

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert started.wait(10)
        assert _value(_scrape(proxy), "guard_proxy_requests_in_flight") == 1
    finally:
        stop.set()
        worker.join(30)
    deadline = time.monotonic() + 10
    while _value(_scrape(proxy), "guard_proxy_requests_in_flight") != 0:
        assert time.monotonic() < deadline, "the stream never left the in-flight count"
        time.sleep(0.05)


def test_readiness_gauges(app_factory: StartApp) -> None:
    m = _scrape(app_factory())
    assert _value(m, "guard_proxy_ready") == 1
    assert _value(m, "guard_proxy_draining") == 0
    assert _value(m, "guard_proxy_upstream_up") == 1
    assert _value(m, "guard_proxy_cache_redis_wanted") == 0
    assert _value(m, "guard_proxy_cache_degraded") == 0
    assert _value(m, "guard_proxy_build_info", version=_version()) == 1
    assert 0 < time.time() - _value(m, "guard_proxy_start_time_seconds") < 600

    down = _scrape(app_factory(upstream=f"http://127.0.0.1:{free_port()}"))
    assert _value(down, "guard_proxy_ready") == 0
    assert _value(down, "guard_proxy_upstream_up") == 0


def test_cache_levels_and_degraded_with_a_real_redis(
    app_factory: StartApp, redis_server: RedisServer, marker: str
) -> None:
    env = {**redis_server.env(), "REDIS_PROBE_INTERVAL": "0.2"}
    first = app_factory(config={"cache": {"backend": "auto"}}, env=env)
    second = app_factory(config={"cache": {"backend": "auto"}}, env=env)
    prompt = f"{marker} cached across proxies"
    with first.client() as c:
        assert _generate(c, prompt, stream=False).status_code == 200
        assert _generate(c, prompt, stream=False).status_code == 200  # memory (L1)
    with second.client() as c:
        assert _generate(c, prompt, stream=False).status_code == 200  # Redis (L2)
    m1, m2 = _scrape(first), _scrape(second)
    assert _value(m1, "guard_proxy_cache_level_hits_total", level="memory") >= 1
    assert _value(m2, "guard_proxy_cache_level_hits_total", level="redis") >= 1
    for m in (m1, m2):
        assert _value(m, "guard_proxy_cache_redis_wanted") == 1
        assert _value(m, "guard_proxy_cache_degraded") == 0
        assert _value(m, "guard_proxy_cache_active_backend", backend="redis") == 1

    redis_server.kill()
    with first.client() as c:
        assert _generate(c, f"{marker} during the outage", stream=False).status_code == 200
    m = _scrape(first)
    assert _value(m, "guard_proxy_cache_degraded") == 1
    assert _value(m, "guard_proxy_cache_active_backend", backend="memory") == 1
    assert _value(m, "guard_proxy_cache_failovers_total") >= 1
    assert _value(m, "guard_proxy_ready") == 1  # cache.require_redis is off: memory serves

    redis_server.restart()
    deadline = time.monotonic() + 30
    while _value(_scrape(first), "guard_proxy_cache_degraded") != 0:
        assert time.monotonic() < deadline, "never back on Redis"
        time.sleep(0.1)


def test_scrapes_send_no_info_or_scan_to_redis(
    app_factory: StartApp, redis_server: RedisServer
) -> None:
    """The renderer uses no Redis memory or key count: a scrape must not cost INFO or SCAN."""
    env = {**redis_server.env(), "REDIS_PROBE_INTERVAL": "0.2"}
    proxy = app_factory(config={"cache": {"backend": "auto"}}, env=env)
    deadline = time.monotonic() + 30
    while _value(_scrape(proxy), "guard_proxy_cache_active_backend", backend="redis") != 1:
        assert time.monotonic() < deadline, "never on Redis"
        time.sleep(0.1)
    before = redis_server.command_calls()
    for _ in range(5):
        assert _value(_scrape(proxy), "guard_proxy_cache_active_backend", backend="redis") == 1
    after = redis_server.command_calls()
    # ``before`` itself is one INFO (commandstats); the scrapes must add none, and no SCAN.
    assert after.get("info", 0) - before.get("info", 0) <= 1, (before, after)
    assert after.get("scan", 0) == before.get("scan", 0), (before, after)


def _version() -> str:
    from guard_proxy import __version__

    return __version__


# ---------------------------------------------------------------- Metrics alone


_EMPTY_STATS: dict[str, Any] = {
    "enabled": True,
    "configured_backend": "auto",
    "active_backend": "none",
    "hits": 0,
    "misses": 0,
    "hit_rate": 0.0,
    "sets": 0,
    "errors": 0,
    "failovers": 0,
    "recoveries": 0,
    "memory_entries": 0,
    "redis": None,
}


class _Cache:
    def __init__(self, stats: dict[str, Any] | Exception, wants_redis: bool = True) -> None:
        self._stats = stats
        self.wants_redis = wants_redis
        self.active_backend = "memory"

    def counters(self) -> CacheStatsBody:
        if isinstance(self._stats, Exception):
            raise self._stats
        return CacheStatsBody.model_validate({**_EMPTY_STATS, **self._stats})


class _Readiness:
    def __init__(self, draining: bool = False, fail: bool = False) -> None:
        self.draining = draining
        self.fail = fail

    async def check(self) -> ReadyBody:
        if self.fail:
            raise RuntimeError("boom")
        return ReadyBody(
            status="not ready" if self.draining else "ready",
            reasons=["draining"] if self.draining else [],
            checks=ReadyChecks(
                upstream=ReadyUpstream(ok=True, url="http://ollama"),
                cache=ReadyCache(ok=True, required=False, active_backend="memory"),
            ),
        )


async def test_scrape_reports_draining_as_not_ready() -> None:
    text = await Metrics().scrape(_Cache({"active_backend": "redis"}), _Readiness(draining=True))
    assert "guard_proxy_ready 0.0\n" in text
    assert "guard_proxy_draining 1.0\n" in text
    assert "guard_proxy_cache_degraded 0.0\n" in text


async def test_scrape_survives_a_failing_cache_and_readiness() -> None:
    text = await Metrics().scrape(_Cache(RuntimeError("gone")), _Readiness(fail=True))
    assert "guard_proxy_ready 0.0\n" in text
    assert "guard_proxy_upstream_up" not in text  # unknown, so not exported
    assert "guard_proxy_cache_degraded 1.0\n" in text  # wanted, and not on Redis
    assert 'guard_proxy_cache_active_backend{backend="memory"} 1.0' in text


def test_render_streams_and_in_flight() -> None:
    metrics = Metrics()
    metrics.stream("/api/chat", 0.02, 1.5)
    metrics.stream("/api/chat", None, 0.3)  # a stream that sent no body chunk
    metrics.in_flight = 2
    text = metrics.render({})
    assert 'guard_proxy_stream_first_chunk_seconds_count{route="/api/chat"} 1.0' in text
    assert 'guard_proxy_stream_duration_seconds_count{route="/api/chat"} 2.0' in text
    stream_bucket = "guard_proxy_stream_duration_seconds_bucket"
    assert sample(text, stream_bucket, route="/api/chat", le="1.0") == 1
    assert sample(text, stream_bucket, route="/api/chat", le="2.5") == 2
    assert "guard_proxy_requests_in_flight 2.0\n" in text
    assert "guard_proxy_ready" not in text  # scrape-time gauges only from scrape()
