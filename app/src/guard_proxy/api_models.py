"""The JSON the proxy's own endpoints answer, as typed models: one definition for both sides.

The server builds its answers as these models (the cache's reports in
:mod:`guard_proxy.cache.facade`, readiness in :mod:`guard_proxy.proxy.readiness`), FastAPI
checks them against each route's ``response_model`` and publishes them in
``/openapi.json`` (:mod:`guard_proxy.proxy.own`); the operator commands
(``guard-proxy status``) read the answers through the same models, so the CLI never guesses
at a field the server does not emit. Fields with a default are ones an older server did not
send; the server always sends them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Backend",
    "BreakerBody",
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
    "WorkerCacheBody",
]

Backend = Literal["redis", "memory", "none"]


class UpstreamState(BaseModel):
    url: str
    reachable: bool


class CacheSummary(BaseModel):
    enabled: bool
    active_backend: Backend


class HealthBody(BaseModel):
    """``GET /health``."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]
    summary: str
    version: str
    started_at: str
    uptime_s: float
    upstream: UpstreamState
    cache: CacheSummary


class ReadyUpstream(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool
    url: str


class ReadyCache(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool
    required: bool
    active_backend: Backend


class ReadyChecks(BaseModel):
    model_config = ConfigDict(extra="forbid")

    upstream: ReadyUpstream
    cache: ReadyCache


class ReadyBody(BaseModel):
    """``GET /ready``: 200 ``ready``, or 503 ``not ready`` with the reasons."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ready", "not ready"]
    reasons: list[str]
    checks: ReadyChecks

    @property
    def ready(self) -> bool:
        """Whether this answer is 200 ``ready``."""
        return self.status == "ready"


class BreakerBody(BaseModel):
    """The Redis circuit breaker in ``/cache/health``."""

    model_config = ConfigDict(extra="allow")

    state: Literal["closed", "open"]
    consecutive_failures: int = 0
    threshold: int = 1


class CacheHealthBody(BaseModel):
    """``GET /cache/health`` (the cache may add fields)."""

    model_config = ConfigDict(extra="allow")

    healthy: bool
    degraded: bool
    enabled: bool
    configured_backend: str
    active_backend: Backend
    redis_connected: bool
    latency_ms: float | None
    redis_address: str | None
    breaker: BreakerBody
    last_error: str | None


class RedisStatsBody(BaseModel):
    """``/cache/stats`` ``redis``: what Redis holds, asked while it serves."""

    model_config = ConfigDict(extra="allow")

    used_memory: int | None
    maxmemory: int | None
    maxmemory_policy: str | None
    keys: int
    keys_complete: bool
    address: str


class WorkerCacheBody(BaseModel):
    """``/cache/stats`` ``per_worker``: one worker process's cache (``server.workers`` > 1)."""

    model_config = ConfigDict(extra="forbid")

    worker: str
    pid: int | None
    active_backend: Backend | None
    breaker_state: str | None
    hits: int | None
    misses: int | None
    memory_entries: int | None


class CacheStatsBody(BaseModel):
    """``GET /cache/stats``: this process's cache, or every worker's counters summed (then
    ``workers``, ``worker`` - the one that answered - and ``per_worker`` are set)."""

    model_config = ConfigDict(extra="allow")

    enabled: bool
    configured_backend: str
    active_backend: Backend
    hits: int
    memory_hits: int = 0
    redis_hits: int = 0
    misses: int
    hit_rate: float
    sets: int
    errors: int
    coalesced: int = 0
    pool_timeouts: int = 0
    failovers: int
    recoveries: int
    last_failover_at: float | None = None
    last_recovery_at: float | None = None
    breaker_state: Literal["closed", "open"] = "closed"
    memory_entries: int
    memory_max_size: int = 0
    memory_evictions: int = 0
    redis: RedisStatsBody | None
    workers: int | None = None
    worker: str | None = None
    per_worker: list[WorkerCacheBody] | None = None


class ClearedBody(BaseModel):
    """``POST /cache/clear``."""

    model_config = ConfigDict(extra="forbid")

    cleared: int


class ErrorBody(BaseModel):
    error: str
