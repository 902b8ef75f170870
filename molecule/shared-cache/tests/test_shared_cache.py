"""Two proxies, one Redis: a verdict computed through proxy1 is a cache hit through proxy2."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from gplib import PROXY_UNIT, http, proxy_url

MODEL = "llama3.2"


def _stats(proxy: Any) -> dict[str, Any]:
    r = http(proxy, "GET", proxy_url(proxy) + "/cache/stats")
    assert r["status"] == 200, r["body"]
    stats: dict[str, Any] = r["json"]
    return stats


def _generate(proxy: Any, text: str) -> dict[str, Any]:
    body = {"model": MODEL, "prompt": f"ECHO:{text}", "stream": False}
    r = http(proxy, "POST", proxy_url(proxy) + "/api/generate", body)
    assert r["status"] == 200, r["body"]
    assert r["json"]["response"] == text
    return r


@pytest.mark.parametrize("name", ["proxy1", "proxy2"])
def test_both_proxies_serve_from_redis(name: str, request: pytest.FixtureRequest) -> None:
    proxy = request.getfixturevalue(name)
    assert proxy.service(PROXY_UNIT).is_running
    r = http(proxy, "GET", proxy_url(proxy) + "/health")
    assert r["status"] == 200
    assert r["json"]["cache"]["active_backend"] == "redis"


def test_verdict_from_proxy1_is_a_hit_on_proxy2(proxy1: Any, proxy2: Any) -> None:
    text = f"shared verdict {uuid.uuid4().hex}"
    _generate(proxy1, text)
    before = _stats(proxy2)
    _generate(proxy2, text)
    after = _stats(proxy2)
    assert after["hits"] > before["hits"], (before, after)
    assert after["misses"] == before["misses"], (before, after)


def test_new_prompt_on_proxy2_is_a_miss(proxy2: Any) -> None:
    """Control: the counters above do move on a miss, so the hit test can fail."""
    before = _stats(proxy2)
    _generate(proxy2, f"fresh prompt {uuid.uuid4().hex}")
    after = _stats(proxy2)
    assert after["misses"] > before["misses"], (before, after)
