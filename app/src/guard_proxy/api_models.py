"""The JSON the proxy's own endpoints answer, as typed models: one definition for both sides.

The server (:mod:`guard_proxy.proxy.own`) writes its answers with these models and publishes
them in ``/openapi.json``; the operator commands (``guard-proxy status``) read the answers
through the same models, so the CLI never guesses at a field the server does not emit.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
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
    breaker: dict[str, Any]
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


class CacheStatsBody(BaseModel):
    """``GET /cache/stats`` (the cache may add counters)."""

    model_config = ConfigDict(extra="allow")

    enabled: bool
    configured_backend: str
    active_backend: Backend
    hits: int
    misses: int
    hit_rate: float
    sets: int
    errors: int
    failovers: int
    recoveries: int
    last_failover_at: float | None = None
    last_recovery_at: float | None = None
    memory_entries: int
    redis: RedisStatsBody | None


class ClearedBody(BaseModel):
    """``POST /cache/clear``."""

    model_config = ConfigDict(extra="forbid")

    cleared: int


class ErrorBody(BaseModel):
    error: str
