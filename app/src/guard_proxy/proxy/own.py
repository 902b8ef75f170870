"""The proxy's own endpoints: health, cache health/stats/clear and metrics.

``POST /cache/clear`` is protected by the access middleware (admin token).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from guard_proxy import __version__
from guard_proxy.proxy.asgi import Receive, Scope, Send, send_bytes
from guard_proxy.proxy.errors import send_json
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.state import request_info
from guard_proxy.proxy.upstream import Upstream

logger = logging.getLogger("guard_proxy.proxy")

PROMETHEUS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class Health:
    """``GET /health``: always 200 while the process serves; upstream, cache and uptime."""

    def __init__(self, upstream: Upstream, cache: Any, cache_enabled: bool) -> None:
        self.upstream = upstream
        self.cache = cache
        self.cache_enabled = cache_enabled
        self.started = time.time()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_info(scope).route = "/health"
        reachable = await self.upstream.reachable()
        await send_json(
            send,
            200,
            {
                "status": "ok",
                "version": __version__,
                "started_at": self.started_at,
                "uptime_s": round(time.time() - self.started, 3),
                "upstream": {"url": self.upstream.url, "reachable": reachable},
                "cache": {"enabled": self.cache_enabled, "active_backend": _active(self.cache)},
            },
        )


def _active(cache: Any) -> str:
    backend = cache.active_backend
    return str(backend) if backend else "none"


class CacheHealth:
    """``GET /cache/health``: 200 when the cache is healthy (memory counts), else 503."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_info(scope).route = "/cache/health"
        health = await self.cache.health()
        status = 200 if health.get("healthy", True) else 503
        await send_json(send, status, health)


class CacheStats:
    """``GET /cache/stats``."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_info(scope).route = "/cache/stats"
        await send_json(send, 200, await self.cache.stats())


class CacheClear:
    """``POST /cache/clear``: delete the keys under the prefix and the memory entries."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = request_info(scope)
        info.route = "/cache/clear"
        cleared = await self.cache.clear()
        logger.warning(
            "cache cleared", extra={"fields": {"cleared": cleared, "client": info.client}}
        )
        await send_json(send, 200, {"cleared": cleared})


class MetricsEndpoint:
    """``GET /metrics``: Prometheus text format."""

    def __init__(self, metrics: Metrics, cache: Any) -> None:
        self.metrics = metrics
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_info(scope).route = "/metrics"
        try:
            stats = await self.cache.stats()
        except Exception:  # the cache must never break the metrics
            stats = {"active_backend": _active(self.cache)}
        body = self.metrics.render(stats).encode()
        await send_bytes(send, 200, body, PROMETHEUS_TYPE)
