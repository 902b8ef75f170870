"""``status`` reads the server through the models the server writes with (``api_models``).

In process, with the HTTP layer replaced: what the answers look like decides the screen, so
a document that is not what the server emits is reported, never guessed at; ``/metrics`` is
read with prometheus_client's parser.
"""

from __future__ import annotations

from typing import Any

import pytest

from guard_proxy.api_models import CacheHealthBody, CacheStatsBody, HealthBody, ReadyBody
from guard_proxy.cli import status
from guard_proxy.cli._instance import Reply
from guard_proxy.cli._prometheus import blocks_by_scanner, parse

URL = "http://127.0.0.1:9"

HEALTH = {
    "status": "ok",
    "summary": "OK · cache memory · upstream ok · 0 req",
    "version": "1.2.3",
    "started_at": "2026-01-01T00:00:00Z",
    "uptime_s": 61.0,
    "upstream": {"url": "http://ollama:11434", "reachable": True},
    "cache": {"enabled": True, "active_backend": "memory"},
}
READY = {
    "status": "ready",
    "reasons": [],
    "checks": {
        "upstream": {"ok": True, "url": "http://ollama:11434"},
        "cache": {"ok": True, "required": False, "active_backend": "memory"},
    },
}
CACHE_HEALTH = {
    "healthy": True,
    "degraded": False,
    "enabled": True,
    "configured_backend": "memory",
    "active_backend": "memory",
    "redis_connected": False,
    "latency_ms": None,
    "redis_address": None,
    "breaker": {"state": "closed"},
    "last_error": None,
}
CACHE_STATS = {
    "enabled": True,
    "configured_backend": "memory",
    "active_backend": "memory",
    "hits": 3,
    "misses": 1,
    "hit_rate": 0.75,
    "sets": 1,
    "errors": 0,
    "failovers": 1,
    "recoveries": 0,
    "last_failover_at": 1_700_000_000.0,
    "last_recovery_at": None,
    "memory_entries": 1,
    "redis": None,
}
METRICS = (
    "# HELP guard_proxy_blocks Blocked requests.\n"
    "# TYPE guard_proxy_blocks counter\n"
    'guard_proxy_blocks_total{direction="input",scanner="BanSubstrings"} 2\n'
)


def serve(monkeypatch: pytest.MonkeyPatch, docs: dict[str, Any], metrics: str = METRICS) -> None:
    """Answer ``status``'s requests from ``docs`` (path -> JSON document) and ``metrics``."""

    def get_json(url: str, timeout: float) -> tuple[Any, str | None]:
        path = url.removeprefix(URL)
        return (docs[path], None) if path in docs else (None, "HTTP 404: not found")

    def request(url: str, **_: Any) -> Reply:
        return Reply(200, metrics.encode(), "text/plain")

    monkeypatch.setattr(status, "get_json", get_json)
    monkeypatch.setattr(status, "request", request)


ALL = {
    "/health": HEALTH,
    "/ready": READY,
    "/cache/health": CACHE_HEALTH,
    "/cache/stats": CACHE_STATS,
}


def test_the_fixtures_are_what_the_server_emits() -> None:
    HealthBody.model_validate(HEALTH)
    ReadyBody.model_validate(READY)
    CacheHealthBody.model_validate(CACHE_HEALTH)
    CacheStatsBody.model_validate(CACHE_STATS)


def test_reads_every_answer_through_its_model(monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, ALL)
    snap = status.gather(URL, 1.0, None)
    assert snap.exit_code == status.EXIT_HEALTHY, snap.reasons
    assert isinstance(snap.health, HealthBody) and isinstance(snap.cache_stats, CacheStatsBody)
    screen = "\n".join(status.render(snap, None))
    assert "1.2.3, up 1m 1s (since " in screen
    assert "75.0 % (3 hits, 1 misses, 1 sets, 0 errors, 1 memory entry)" in screen
    assert "1 failover, 0 recoveries; last: failover" in screen
    assert "input BanSubstrings 2" in screen
    assert status.as_json(snap, None)["cache_stats"] == CACHE_STATS  # as answered


def test_a_health_answer_that_is_not_the_servers_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: any JSON object was an instance, rendered as 'version unknown, uptime unknown'."""
    serve(monkeypatch, {**ALL, "/health": {"status": "ok"}})
    snap = status.gather(URL, 1.0, None)
    assert snap.exit_code == status.EXIT_DOWN
    assert snap.reasons == ["instance not answering: unexpected /health answer"]


def test_a_cache_answer_that_is_not_the_servers_is_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: an unknown document was read field by field with fallbacks."""
    serve(monkeypatch, {**ALL, "/cache/stats": {"hits": "many"}})
    snap = status.gather(URL, 1.0, None)
    assert snap.cache_stats is None
    assert snap.missing["/cache/stats"].startswith("unexpected answer (")
    assert "hit rate" in "\n".join(status.render(snap, None))


def test_metrics_that_are_not_prometheus_text_are_not_zero_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the hand parser skipped every line it could not read: 'none since start'."""
    serve(monkeypatch, ALL, metrics="<html><body>a login page</body></html>\n")
    snap = status.gather(URL, 1.0, None)
    assert snap.blocks is None
    assert snap.missing["/metrics"] == "not Prometheus text"
    assert "none since start" not in "\n".join(status.render(snap, None))


def test_label_escapes_are_read_as_the_format_defines() -> None:
    r"""``\\n`` in a label value is a backslash and an ``n``; the hand parser made a newline."""
    text = (
        "# TYPE guard_proxy_blocks counter\n"
        'guard_proxy_blocks_total{direction="input",scanner="a\\\\nb \\"q\\""} 2\n'
    )
    assert blocks_by_scanner(parse(text)) == {'input a\\nb "q"': 2}
