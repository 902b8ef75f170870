"""Readiness: may this instance take traffic? (``GET /ready``; ``/health`` is liveness.)

Ready means: not draining, the upstream (Ollama) answers, and, with ``cache.require_redis``,
the cache serves from Redis and a PING through its pool (the configured credentials) answers
now. The upstream probe is shared and reused for :data:`PROBE_TTL` seconds, so frequent
health checks cost Ollama at most one ``GET /`` a second. Nothing here is on the request
path; nothing it reports holds a secret (URLs lose their userinfo, Redis errors are reduced
to a fixed vocabulary by :func:`short_error`).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from guard_proxy.api_models import ReadyBody, ReadyCache, ReadyChecks, ReadyUpstream
from guard_proxy.proxy.upstream import Upstream

if TYPE_CHECKING:
    from guard_proxy.cache import GuardCache

__all__ = ["PROBE_TTL", "Readiness", "public_url", "short_error"]

PROBE_TTL = 1.0
"""Seconds an upstream probe result is reused."""

# (pattern in a cache error text, short words) — first match wins.
_SHORT_ERRORS = (
    (re.compile(r"MasterNotFound|No master found", re.I), "no primary found by the sentinels"),
    (
        re.compile(r"WRONGPASS|NOAUTH|invalid username-password|Authentication|AuthFailed", re.I),
        "authentication failed",
    ),
    (re.compile(r"refused|Error 111\b", re.I), "connection refused"),
    (
        re.compile(
            r"Name or service not known|nodename nor servname|getaddrinfo|Error -[23]\b", re.I
        ),
        "cannot resolve host",
    ),
    (re.compile(r"timeout|timed out", re.I), "timeout"),
    (re.compile(r"NOPERM", re.I), "denied by ACL"),
    (re.compile(r"reset by peer|Connection closed|closed by server", re.I), "connection lost"),
)


def short_error(text: str | None) -> str:
    """A few fixed words for a cache error (``connection refused``, ``timeout``, ...).

    Unknown errors become their class name only, so no server text (and no secret) passes.
    """
    if not text:
        return "not connected"
    for pattern, words in _SHORT_ERRORS:
        if pattern.search(text):
            return words
    head = text.split(":", 1)[0].strip()
    return head if head.isidentifier() else "error"


def public_url(url: str) -> str:
    """``url`` without user and password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Readiness:
    """The instance's readiness state, shared by ``/ready``, ``/health`` and the STATUS line.

    **Parameters:**

    * **upstream** - the Ollama client (its :meth:`Upstream.reachable` is the probe).
    * **cache** - the :class:`guard_proxy.cache.GuardCache`.
    * **require_redis** - ``cache.require_redis``: ready only while Redis serves the cache.
    """

    def __init__(self, upstream: Upstream, cache: GuardCache, *, require_redis: bool) -> None:
        self.upstream = upstream
        self.cache = cache
        self.require_redis = require_redis
        self.url = public_url(upstream.url)
        self.draining = False
        """Set when the process is shutting down: ``/ready`` answers 503 ``draining``."""
        self._probed_at = -PROBE_TTL
        self._reachable: bool | None = None
        self._probe: asyncio.Task[bool] | None = None

    @property
    def last_upstream(self) -> bool | None:
        """The last probe's answer (None before the first), without probing."""
        return self._reachable

    async def upstream_reachable(self) -> bool:
        """Whether Ollama answers; one shared probe, its answer reused for ``PROBE_TTL``."""
        if self._reachable is not None and time.monotonic() - self._probed_at < PROBE_TTL:
            return self._reachable
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._run_probe())
        return await asyncio.shield(self._probe)

    async def _run_probe(self) -> bool:
        try:
            reachable = await self.upstream.reachable()
        except Exception:  # reachable() translates the client's errors; anything else is "no"
            reachable = False
        finally:
            self._probe = None
        self._reachable = reachable
        self._probed_at = time.monotonic()
        return reachable

    async def check(self) -> ReadyBody:
        """Probe what readiness needs, now (the upstream answer may be up to 1 s old); the
        ``/ready`` body (``ready`` says whether it is 200)."""
        reasons: list[str] = []
        if self.draining:
            reasons.append("draining")
        upstream_ok = await self.upstream_reachable()
        if not upstream_ok:
            reasons.append(f"upstream {self.url} not reachable")
        cache_ok = True
        if self.require_redis:
            cache_ok = await self._redis_usable(reasons)
        return ReadyBody(
            status="not ready" if reasons else "ready",
            reasons=reasons,
            checks=ReadyChecks(
                upstream=ReadyUpstream(ok=upstream_ok, url=self.url),
                cache=ReadyCache(
                    ok=cache_ok,
                    required=self.require_redis,
                    active_backend=self.cache.active_backend,
                ),
            ),
        )

    async def _redis_usable(self, reasons: list[str]) -> bool:
        cache = self.cache
        where = cache.redis_endpoint or "redis"
        if cache.active_backend == "redis":
            health = await cache.health()  # a PING through the pool; a failure trips the breaker
            if health.redis_connected:
                return True
            reasons.append(
                f"redis required but PING failed ({where}: {short_error(cache.last_error)})"
            )
            return False
        reasons.append(
            f"redis required but the cache serves from {cache.active_backend} "
            f"({where}: {short_error(cache.last_error)})"
        )
        return False
