"""The proxy's own endpoints as a FastAPI app: health, readiness, cache health/stats/clear, metrics.

The :class:`~guard_proxy.proxy.router.Router` dispatches these paths (and ``/openapi.json``
and ``/docs``, which describe them) to this app; proxied routes never touch FastAPI. Access
control (allow-list, admin token for ``POST /cache/clear``) is the access middleware's, in
front of the router: the app only documents it. Each endpoint returns its body as a
:mod:`guard_proxy.api_models` model (built by the cache and readiness themselves); FastAPI
checks it against the route's ``response_model`` (the same model the OpenAPI document
describes) and it is written with orjson as ``application/json; charset=utf-8``, the same
bytes and headers as every other JSON answer of the proxy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from guard_proxy import __version__
from guard_proxy.api_models import (
    CacheHealthBody,
    CacheStatsBody,
    CacheSummary,
    ClearedBody,
    ErrorBody,
    HealthBody,
    ReadyBody,
    ReadyCache,
    ReadyChecks,
    ReadyUpstream,
    RedisStatsBody,
    UpstreamState,
)
from guard_proxy.proxy.asgi import ASGIApp, Receive, Scope, Send
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.readiness import Readiness
from guard_proxy.proxy.state import request_info
from guard_proxy.proxy.statusline import summary
from guard_proxy.proxy.upstream import Upstream
from guard_proxy.proxy.workershare import WorkerShare

if TYPE_CHECKING:
    from guard_proxy.cache import GuardCache

__all__ = [  # the response models are re-exported: they live in guard_proxy.api_models
    "CacheHealthBody",
    "CacheStatsBody",
    "CacheSummary",
    "ClearedBody",
    "ErrorBody",
    "HealthBody",
    "ReadyBody",
    "ReadyCache",
    "ReadyChecks",
    "ReadyUpstream",
    "RedisStatsBody",
    "UpstreamState",
    "own_app",
]

logger = logging.getLogger("guard_proxy.proxy")

Endpoint = Callable[..., Awaitable[Any]]

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The paths the router sends here are listed in routes.OWN_ROUTES.


class JSONBody(JSONResponse):
    """A JSON response written by orjson, typed ``application/json; charset=utf-8``."""

    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "admin token missing or wrong"},
    403: {"model": ErrorBody, "description": "no admin token configured, or address not allowed"},
}
_DENIED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "client address not in access.allow"},
}


def own_app(
    upstream: Upstream,
    cache: GuardCache,
    cache_enabled: bool,
    metrics: Metrics,
    readiness: Readiness,
    share: WorkerShare | None = None,
) -> ASGIApp:
    """The FastAPI app of the own endpoints, wrapped so each request is logged under its path.

    ``cache`` is the app's :class:`guard_proxy.cache.GuardCache`. With ``share`` (one worker
    of several), ``/cache/stats`` merges every worker's numbers (``/metrics`` does through
    prometheus_client's multiprocess mode).
    """
    started = time.time()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    app = FastAPI(
        title="guard-proxy",
        version=__version__,
        description=(
            "The guard proxy's own endpoints. Ollama's native API and its OpenAI-compatible "
            "`/v1` API are proxied as Ollama documents them and are not listed here."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    # Documents the Bearer scheme; the access middleware checks the token before this runs.
    admin_token = HTTPBearer(auto_error=False, description="access.admin_token")

    def get(path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
        """A GET route documented once; HEAD answers the same (its body is dropped)."""

        responses = {**_DENIED, **kwargs.pop("responses", {})}

        def register(endpoint: Endpoint) -> Endpoint:
            app.get(path, responses=responses, **kwargs)(endpoint)
            app.head(path, include_in_schema=False, **kwargs)(endpoint)
            return endpoint

        return register

    @get("/health", response_model=HealthBody, response_class=JSONBody)
    async def health() -> HealthBody:
        """Liveness: always 200 while the process serves; upstream, cache backend, summary line."""
        reachable = await readiness.upstream_reachable()
        return HealthBody(
            status="ok",
            summary=summary(readiness, metrics, reachable),
            version=__version__,
            started_at=started_at,
            uptime_s=round(time.time() - started, 3),
            upstream=UpstreamState(url=upstream.url, reachable=reachable),
            cache=CacheSummary(enabled=cache_enabled, active_backend=cache.active_backend),
        )

    @get(
        "/ready",
        response_model=ReadyBody,
        response_class=JSONBody,
        responses={503: {"model": ReadyBody, "description": "not ready: the reasons say why"}},
    )
    async def ready(response: Response) -> ReadyBody:
        """Readiness: 200 when the upstream answers and, with ``cache.require_redis``, Redis
        serves the cache and answers a PING now; otherwise 503 with the reasons."""
        body = await readiness.check()
        response.status_code = 200 if body.ready else 503
        return body

    @get(
        "/cache/health",
        response_model=CacheHealthBody,
        response_class=JSONBody,
        responses={503: {"model": CacheHealthBody, "description": "cache closed"}},
    )
    async def cache_health(response: Response) -> CacheHealthBody:
        """200 while the cache serves (memory counts), 503 once it is closed."""
        body = await cache.health()
        response.status_code = 200 if body.healthy else 503
        return body

    @get(
        "/cache/stats",
        response_model=CacheStatsBody,
        response_class=JSONBody,
        response_model_exclude_unset=True,  # ``workers``... only when there are several
    )
    async def cache_stats() -> CacheStatsBody:
        """Cache counters, the serving backend, and Redis memory and key count when connected.

        With several workers: the counters summed over all, ``workers`` and ``per_worker``."""
        stats = await cache.stats()
        if share is None:
            return stats
        return CacheStatsBody.model_validate(share.merged_stats(stats.model_dump()))

    @app.post(
        "/cache/clear",
        response_model=ClearedBody,
        response_class=JSONBody,
        responses=_ADMIN_ERRORS,
        dependencies=[Depends(admin_token)],
    )
    async def cache_clear(request: Request) -> ClearedBody:
        """Delete the keys under ``cache.prefix`` (never FLUSHDB) and the memory entries."""
        cleared = await cache.clear()
        client = request_info(request.scope).client
        logger.warning("cache cleared", extra={"fields": {"cleared": cleared, "client": client}})
        return ClearedBody(cleared=cleared)

    @get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {PROMETHEUS_TYPE: {}}, "description": "Prometheus text"}},
    )
    async def metrics_text() -> Response:
        """Prometheus text format: requests, streams, blocks, scans, cache, readiness."""
        text = await metrics.scrape(cache, readiness)  # every worker's, when there are several
        return Response(text.encode(), media_type=PROMETHEUS_TYPE)

    async def own(scope: Scope, receive: Receive, send: Send) -> None:
        request_info(scope).route = scope["path"]
        await app(scope, receive, send)

    return own
