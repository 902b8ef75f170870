"""Two proxies, one Redis: a verdict computed through proxy1 is a cache hit through proxy2."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from gplib import PROXY_UNIT, http, proxy_url, wait_for

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


def _last_request_log(proxy: Any, path: str) -> dict[str, Any]:
    """The newest JSON request line the proxy logged for ``path``. The line is written when
    the answer has been sent and reaches the journal a moment later: polled for 10 s."""

    def newest() -> dict[str, Any] | None:
        out = proxy.run("journalctl --no-pager -o cat -n 200 -u %s", PROXY_UNIT).stdout
        for line in reversed(out.splitlines()):
            if line.startswith("{") and f'"path":"{path}"' in line.replace(" ", ""):
                entry: dict[str, Any] = json.loads(line)
                return entry
        return None

    found: dict[str, Any] | None = wait_for(newest, timeout=10)
    if found is None:
        raise AssertionError(f"no request line for {path} in the journal")
    return found


def test_verdict_from_proxy1_is_a_hit_on_proxy2(proxy1: Any, proxy2: Any) -> None:
    text = f"shared verdict {uuid.uuid4().hex}"
    _generate(proxy1, text)
    assert _last_request_log(proxy1, "/api/generate").get("cache") == "miss"
    before = _stats(proxy2)
    _generate(proxy2, text)
    # With several workers, /cache/stats adds up every worker's counters from snapshots
    # at most about a second old: poll until the hit shows.
    after = wait_for(lambda: (s := _stats(proxy2))["hits"] > before["hits"] and s, timeout=10)
    assert after, (before, _stats(proxy2))
    assert after["misses"] == before["misses"], (before, after)
    entry = _last_request_log(proxy2, "/api/generate")
    assert entry.get("cache") == "hit", entry
    assert text not in json.dumps(entry), "prompt text in the request log"


def test_new_prompt_on_proxy2_is_a_miss(proxy2: Any) -> None:
    """Control: the counters above do move on a miss, so the hit test can fail."""
    before = _stats(proxy2)
    _generate(proxy2, f"fresh prompt {uuid.uuid4().hex}")
    after = wait_for(lambda: (s := _stats(proxy2))["misses"] > before["misses"] and s, timeout=10)
    assert after, (before, _stats(proxy2))
