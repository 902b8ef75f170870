"""The app factory: routes, middlewares and lifespan wired from settings, guard and cache.

Middleware order, outermost first: request log (times, counts, logs every request),
access (allow-list, admin token, body limit), then the routes. Proxy routes are pure-ASGI
endpoints: FastAPI only routes to them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from guard_proxy import __version__
from guard_proxy.config import Settings
from guard_proxy.guard import Guard
from guard_proxy.proxy import shapes
from guard_proxy.proxy.access import AccessMiddleware
from guard_proxy.proxy.guarded import Guarded
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.own import CacheClear, CacheHealth, CacheStats, Health, MetricsEndpoint
from guard_proxy.proxy.passthrough import Passthrough
from guard_proxy.proxy.requestlog import RequestLogMiddleware
from guard_proxy.proxy.upstream import Upstream
from guard_proxy.proxy.verdicts import VerdictService

# (path, methods, streamed: no read timeout, stream the request body)
PASSTHROUGH_ROUTES: tuple[tuple[str, tuple[str, ...], bool, bool], ...] = (
    ("/", ("GET", "HEAD"), False, False),
    ("/api/version", ("GET", "HEAD"), False, False),
    ("/api/tags", ("GET", "HEAD"), False, False),
    ("/api/ps", ("GET", "HEAD"), False, False),
    ("/api/show", ("POST",), False, False),
    ("/api/copy", ("POST",), False, False),
    ("/api/delete", ("DELETE",), False, False),
    ("/api/create", ("POST",), True, False),
    ("/api/pull", ("POST",), True, False),
    ("/api/push", ("POST",), True, False),
    ("/api/embed", ("POST",), False, False),
    ("/api/embeddings", ("POST",), False, False),
    ("/api/blobs/{digest}", ("HEAD", "POST"), True, True),
    ("/v1/embeddings", ("POST",), False, False),
    ("/v1/models", ("GET",), False, False),
    ("/v1/models/{model:path}", ("GET",), False, False),
)
GUARDED_SHAPES = (shapes.GENERATE, shapes.CHAT, shapes.OPENAI_CHAT, shapes.OPENAI_COMPLETION)


def create_app(
    settings: Settings,
    guard: Guard,
    cache: Any,
    *,
    upstream: Upstream | None = None,
) -> FastAPI:
    """Build the proxy app. Its lifespan starts the cache and closes cache and upstream.

    ``cache`` is a :class:`guard_proxy.cache.GuardCache` (not started yet).
    """
    upstream = upstream or Upstream(settings.ollama)
    metrics = Metrics()
    verdicts = VerdictService(guard, cache, metrics, settings.guard.fail_mode)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cache.start()
        try:
            yield
        finally:
            await upstream.aclose()
            await cache.aclose()

    routes: list[Route] = [
        Route("/health", Health(upstream, cache, settings.cache.enabled), methods=["GET"]),
        Route("/cache/health", CacheHealth(cache), methods=["GET"]),
        Route("/cache/stats", CacheStats(cache), methods=["GET"]),
        Route("/cache/clear", CacheClear(cache), methods=["POST"]),
        Route("/metrics", MetricsEndpoint(metrics, cache), methods=["GET"]),
    ]
    for shape in GUARDED_SHAPES:
        endpoint = Guarded(shape, upstream, guard, verdicts, metrics)
        routes.append(Route(shape.route, endpoint, methods=["POST"]))
    for path, methods, streamed, stream_request in PASSTHROUGH_ROUTES:
        route = path.replace(":path", "")
        relay = Passthrough(upstream, route, streamed=streamed, stream_request=stream_request)
        routes.append(Route(path, relay, methods=list(methods)))

    app = FastAPI(
        title="guard-proxy",
        version=__version__,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.router.routes.extend(routes)
    app.add_middleware(
        AccessMiddleware, settings=settings.access, max_body_bytes=settings.server.max_body_bytes
    )
    app.add_middleware(RequestLogMiddleware, metrics=metrics, access_log=settings.server.access_log)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.upstream = upstream
    app.state.cache = cache
    app.state.verdicts = verdicts
    return app
