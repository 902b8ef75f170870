"""The app factory: routes, middlewares and lifespan wired from settings, guard and cache.

Middleware order, outermost first: request log (times, counts, logs every request),
access (allow-list, admin token, body limit), client keys and their limits (only with
``access.keys.enabled``, :mod:`guard_proxy.keys`), drain (the proxied requests in flight, ended
in their own format at the drain deadline), then the :class:`Router`. Every layer and every
proxied route is pure ASGI: no framework sits on the hot path. The proxy's own endpoints
(and their OpenAPI document) are a FastAPI app the router dispatches to by path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard_proxy.config import Settings
from guard_proxy.guard import Direction, Guard
from guard_proxy.guard.offload import ScanExecutor, default_threads
from guard_proxy.guard.redaction import Finder
from guard_proxy.proxy.access import AccessMiddleware
from guard_proxy.proxy.asgi import ASGIApp
from guard_proxy.proxy.drain import DrainMiddleware, InFlight
from guard_proxy.proxy.guarded import Guarded
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.own import own_app
from guard_proxy.proxy.passthrough import Passthrough
from guard_proxy.proxy.readiness import Readiness
from guard_proxy.proxy.redact import RedactionPolicy
from guard_proxy.proxy.requestlog import RequestLogMiddleware
from guard_proxy.proxy.router import Router
from guard_proxy.proxy.routes import (
    GUARDED_ROUTES,
    OWN_ROUTES,
    PASSTHROUGH_ROUTES,
    admin_paths,
    own_paths,
    streamed_upload_prefixes,
)
from guard_proxy.proxy.upstream import Upstream
from guard_proxy.proxy.verdicts import VerdictService
from guard_proxy.proxy.workershare import WorkerShare

if TYPE_CHECKING:
    from guard_proxy.cache import GuardCache
    from guard_proxy.keys.wiring import ClientKeys


def create_app(
    settings: Settings,
    guard: Guard,
    cache: GuardCache,
    *,
    upstream: Upstream | None = None,
    readiness: Readiness | None = None,
    metrics: Metrics | None = None,
    inflight: InFlight | None = None,
    share: WorkerShare | None = None,
) -> ASGIApp:
    """Build the proxy app. Its lifespan starts the cache and closes cache and upstream.

    ``cache`` is a :class:`guard_proxy.cache.GuardCache` (not started yet). ``readiness``
    (built here when not given) must be over the same upstream and cache; ``metrics`` are
    the counters the app fills (new ones when not given). ``inflight`` registers the proxied
    requests being answered (the drain on shutdown ends them; new when not given); ``share``
    is given to a worker of several (``/cache/stats`` merges all workers).
    """
    client = readiness.upstream if readiness is not None else upstream or Upstream(settings.ollama)
    if readiness is None:
        readiness = Readiness(client, cache, require_redis=settings.cache.require_redis)
    metrics = metrics if metrics is not None else Metrics()
    finder = Finder.from_settings(settings.guard.input)
    executor = model_threads(settings) if any(guard.offloaded(d) for d in Direction) else None
    verdicts = VerdictService(
        guard,
        cache,
        metrics,
        settings.guard.fail_mode,
        {Direction.INPUT: finder},
        executor=executor,
    )
    redaction = RedactionPolicy.from_settings(settings.guard)

    async def shutdown() -> None:
        try:
            await client.aclose()
        finally:
            if executor is not None:
                executor.shutdown()
            await cache.aclose()

    keys = _client_keys(settings)

    async def startup() -> None:
        await cache.start()
        if keys is not None:
            await keys.start()

    async def shutdown_all() -> None:
        try:
            if keys is not None:
                await keys.aclose()
        finally:
            await shutdown()

    router = Router(startup=startup, shutdown=shutdown_all)
    inflight = inflight if inflight is not None else InFlight()
    own = own_app(client, cache, settings.cache.enabled, metrics, readiness, share)
    if keys is not None:
        own = keys.with_metrics(own)
    for own_route in OWN_ROUTES:
        router.add(own_route.path, own, [own_route.method])
    for shape in GUARDED_ROUTES:
        router.add(
            shape.route, Guarded(shape, client, guard, verdicts, metrics, redaction), ["POST"]
        )
    for route in PASSTHROUGH_ROUTES:
        relay = Passthrough(
            client,
            route.path.replace(":path", ""),
            streamed=route.streamed,
            stream_request=route.stream_request,
        )
        router.add(route.path, relay, route.methods)
    drain: ASGIApp = DrainMiddleware(router, inflight, own_paths=own_paths())
    if keys is not None:
        drain = keys.protect(
            drain,
            settings,
            exempt=own_paths(),
            generation=[shape.route for shape in GUARDED_ROUTES],
        )
    access = AccessMiddleware(
        drain,
        settings=settings.access,
        max_body_bytes=settings.server.max_body_bytes,
        admin=admin_paths(),
        uploads=streamed_upload_prefixes(),
    )
    return RequestLogMiddleware(access, metrics=metrics, access_log=settings.server.access_log)


def model_threads(settings: Settings) -> ScanExecutor:
    """This worker's :class:`ScanExecutor`, sized by ``guard.model_threads`` and friends."""
    g = settings.guard
    threads = g.model_threads or default_threads(settings.server.workers)
    return ScanExecutor(
        threads=threads, queue=g.scan_queue, timeout=g.scan_timeout, max_batch=g.max_batch
    )


def _client_keys(settings: Settings) -> ClientKeys | None:
    """The client-key layer when ``access.keys.enabled`` (imported only then)."""
    if not settings.access.keys.enabled:
        return None
    from guard_proxy.keys.wiring import ClientKeys

    return ClientKeys.from_settings(settings)
