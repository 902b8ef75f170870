"""The route table: every path the proxy answers, by who answers it, with named properties.

Three kinds of route, one table each:

* :data:`OWN_ROUTES` - the proxy's own endpoints (a FastAPI app, :mod:`.own`); ``admin``
  ones need the admin token.
* :data:`GUARDED_ROUTES` - the routes the guard scans, one :class:`~.shapes.Shape` each
  (:mod:`.guarded`).
* :data:`PASSTHROUGH_ROUTES` - routes carried unchanged (:mod:`.passthrough`); ``streamed``
  ones have no read timeout, ``stream_request`` ones send the request body upstream as it
  arrives (blob uploads), so they are exempt from the body limit.

The app factory wires the router from these tables, and access control and draining take
what they need from them (:func:`admin_paths`, :func:`streamed_upload_prefixes`,
:func:`own_paths`), so a route's properties are written down once.
"""

from __future__ import annotations

from dataclasses import dataclass

from guard_proxy.proxy import shapes


@dataclass(frozen=True, slots=True)
class OwnRoute:
    """One of the proxy's own endpoints."""

    path: str
    method: str
    admin: bool = False  # needs ``Authorization: Bearer <access.admin_token>``


@dataclass(frozen=True, slots=True)
class PassthroughRoute:
    """A route carried unchanged to Ollama (``/a/{x}`` and ``/a/{x:path}`` match a rest)."""

    path: str
    methods: tuple[str, ...]
    streamed: bool = False  # no read timeout (progress streams, uploads)
    stream_request: bool = False  # the request body is streamed upstream, never buffered


_GET = ("GET", "HEAD")

# What the router sends to the own app (a GET route also answers HEAD).
OWN_ROUTES = (
    OwnRoute("/health", "GET"),
    OwnRoute("/ready", "GET"),
    OwnRoute("/cache/health", "GET"),
    OwnRoute("/cache/stats", "GET"),
    OwnRoute("/cache/clear", "POST", admin=True),
    OwnRoute("/metrics", "GET"),
    OwnRoute("/openapi.json", "GET"),
    OwnRoute("/docs", "GET"),
)
GUARDED_ROUTES = (shapes.GENERATE, shapes.CHAT, shapes.OPENAI_CHAT, shapes.OPENAI_COMPLETION)
PASSTHROUGH_ROUTES = (
    PassthroughRoute("/", _GET),
    PassthroughRoute("/api/version", _GET),
    PassthroughRoute("/api/tags", _GET),
    PassthroughRoute("/api/ps", _GET),
    PassthroughRoute("/api/show", ("POST",)),
    PassthroughRoute("/api/copy", ("POST",)),
    PassthroughRoute("/api/delete", ("DELETE",)),
    PassthroughRoute("/api/create", ("POST",), streamed=True),
    PassthroughRoute("/api/pull", ("POST",), streamed=True),
    PassthroughRoute("/api/push", ("POST",), streamed=True),
    PassthroughRoute("/api/embed", ("POST",)),
    PassthroughRoute("/api/embeddings", ("POST",)),
    PassthroughRoute("/api/blobs/{digest}", ("HEAD", "POST"), streamed=True, stream_request=True),
    PassthroughRoute("/v1/embeddings", ("POST",)),
    PassthroughRoute("/v1/models", ("GET",)),
    PassthroughRoute("/v1/models/{model:path}", ("GET",)),
)


def own_paths() -> frozenset[str]:
    """The paths of the own endpoints (not proxied: draining neither counts nor cuts them)."""
    return frozenset(route.path for route in OWN_ROUTES)


def admin_paths() -> frozenset[str]:
    """The paths that need the admin token."""
    return frozenset(route.path for route in OWN_ROUTES if route.admin)


def streamed_upload_prefixes() -> tuple[str, ...]:
    """Path prefixes whose request body is streamed upstream (exempt from the body limit)."""
    return tuple(
        route.path.partition("{")[0] for route in PASSTHROUGH_ROUTES if route.stream_request
    )
