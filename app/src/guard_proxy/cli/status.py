"""``guard-proxy status``: one screen on a running instance, and an exit code for monitoring.

Asks the instance itself over HTTP (``/health``, ``/ready``, ``/cache/health``,
``/cache/stats``, ``/metrics``): the running process is the truth about which backend serves.
Exit codes: 0 healthy (on Redis, or on memory when memory is what is configured), 1 serving
but degraded (fell back to memory although Redis is configured, the upstream is unreachable,
or ``/ready`` says not ready), 2 the instance does not answer (or its address cannot be
worked out).

Finding and asking the instance is :mod:`guard_proxy.cli._instance`; reading ``/metrics`` is
:mod:`guard_proxy.cli._prometheus`. This module gathers, judges and renders.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from guard_proxy.api_models import (
    CacheHealthBody,
    CacheStatsBody,
    HealthBody,
    ReadyBody,
    RedisStatsBody,
)
from guard_proxy.cli._format import human_bytes, human_duration, when
from guard_proxy.cli._instance import (
    EXIT_DOWN,
    Unreachable,
    add_url_arguments,
    get_json,
    request,
    resolve_or_report,
)
from guard_proxy.cli._prometheus import blocks_by_scanner, parse

if TYPE_CHECKING:
    from pydantic import BaseModel

    from guard_proxy.config import Settings

EXIT_HEALTHY, EXIT_DEGRADED = 0, 1


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the state of a running instance (exit 0 healthy, 1 degraded, 2 down)",
        description="Show version, uptime, upstream, cache backend, Redis, hit rate, "
        "failovers and blocks of a running guard-proxy. Exit 0 when healthy, 1 when serving "
        "but degraded (memory fallback, upstream down, or not ready), 2 when the instance does not "
        "answer.",
    )
    add_url_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead")
    parser.set_defaults(handler=run)


# --------------------------------------------------------------------------- gathering


@dataclass
class Snapshot:
    """Everything ``status`` learned about one instance.

    Each answer is read through the response model the server writes it with
    (:mod:`guard_proxy.api_models`); ``docs`` keeps the documents as answered, for ``--json``.
    """

    url: str
    answered: bool = False
    error: str | None = None
    health: HealthBody | None = None
    ready: ReadyBody | None = None
    cache_health: CacheHealthBody | None = None
    cache_stats: CacheStatsBody | None = None
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocks: dict[str, float] | None = None
    missing: dict[str, str] = field(default_factory=dict)
    redis_address: str | None = None
    reasons: list[str] = field(default_factory=list)
    exit_code: int = EXIT_DOWN

    @property
    def state(self) -> str:
        return {EXIT_HEALTHY: "healthy", EXIT_DEGRADED: "degraded"}.get(self.exit_code, "down")


_Model = TypeVar("_Model", bound="BaseModel")


def _read(
    url: str, path: str, model: type[_Model], timeout: float
) -> tuple[_Model | None, Any, str | None]:
    """``(parsed, document, None)`` or ``(None, document or None, why not)``."""
    from pydantic import ValidationError

    doc, why = get_json(f"{url}{path}", timeout)
    if not isinstance(doc, dict):
        return None, doc, why or "unexpected answer"
    try:
        return model.model_validate(doc), doc, None
    except ValidationError as exc:
        return None, doc, f"unexpected answer ({exc.error_count()} fields not as documented)"


def gather(url: str, timeout: float, settings: Settings | None) -> Snapshot:
    snap = Snapshot(url=url)
    health, doc, why = _read(url, "/health", HealthBody, timeout)
    if health is None:
        error = (why or "no answer") if doc is None else "unexpected /health answer"
        if error.startswith("HTTP 403"):
            error += " (is this host in access.allow?)"
        snap.error = error
        snap.reasons.append(f"instance not answering: {error}")
        return snap
    snap.answered = True
    snap.health, snap.docs["health"] = health, doc
    snap.ready, doc, why = _read(url, "/ready", ReadyBody, timeout)
    _keep(snap, "ready", "/ready", snap.ready, doc, why)
    snap.cache_health, doc, why = _read(url, "/cache/health", CacheHealthBody, timeout)
    _keep(snap, "cache_health", "/cache/health", snap.cache_health, doc, why)
    snap.cache_stats, doc, why = _read(url, "/cache/stats", CacheStatsBody, timeout)
    _keep(snap, "cache_stats", "/cache/stats", snap.cache_stats, doc, why)
    snap.blocks = _blocks(url, timeout, snap)
    snap.redis_address = _redis_address(snap, settings)
    snap.exit_code, snap.reasons = judge(snap, settings)
    return snap


def _keep(snap: Snapshot, name: str, path: str, parsed: Any, doc: Any, why: str | None) -> None:
    if parsed is not None:
        snap.docs[name] = doc
    else:
        snap.missing[path] = why or "unexpected answer"


def _blocks(url: str, timeout: float, snap: Snapshot) -> dict[str, float] | None:
    try:
        reply = request(f"{url}/metrics", timeout=timeout)
    except Unreachable as exc:
        snap.missing["/metrics"] = str(exc)
        return None
    if reply.status != 200:
        snap.missing["/metrics"] = f"HTTP {reply.status}"
        return None
    try:
        return blocks_by_scanner(parse(reply.body.decode("utf-8", "replace")))
    except ValueError:
        snap.missing["/metrics"] = "not Prometheus text"
        return None


def _redis_address(snap: Snapshot, settings: Settings | None) -> str | None:
    """``host:port/db`` as the instance reports it (never credentials); else from config."""
    ch, rd = snap.cache_health, _redis_stats(snap)
    for value in (ch.redis_address if ch else None, rd.address if rd else None):
        if value:
            return value
    if settings is not None and ch is None:
        from guard_proxy.cache.redis_client import redis_address

        return f"{redis_address(settings.redis)} (from config)"
    return None


def _redis_stats(snap: Snapshot) -> RedisStatsBody | None:
    """The ``redis`` section of ``/cache/stats`` (memory, keys; only while connected)."""
    return snap.cache_stats.redis if snap.cache_stats else None


def configured_backend(snap: Snapshot, settings: Settings | None) -> str | None:
    if snap.cache_health is not None:
        return snap.cache_health.configured_backend
    if snap.cache_stats is not None:
        return snap.cache_stats.configured_backend
    return settings.cache.backend if settings is not None else None


def active_backend(snap: Snapshot) -> str | None:
    for answer in (snap.cache_health, snap.health.cache if snap.health else None, snap.cache_stats):
        if answer is not None:
            return answer.active_backend
    return None


def redis_wanted(snap: Snapshot, settings: Settings | None) -> bool:
    """True when the instance should be serving from Redis.

    ``/cache/health`` names a Redis address exactly when the instance wants Redis (backend
    ``auto``/``redis`` with ``redis.enabled``); without that answer, the local config decides.
    """
    if (snap.health and not snap.health.cache.enabled) or active_backend(snap) == "none":
        return False
    if snap.cache_health is not None:
        return snap.cache_health.redis_address is not None
    if settings is not None and not settings.redis.enabled:
        return False
    return configured_backend(snap, settings) in ("auto", "redis")


def judge(snap: Snapshot, settings: Settings | None) -> tuple[int, list[str]]:
    """Exit code and reasons: 0 healthy, 1 degraded (serving), 2 down."""
    if not snap.answered or snap.health is None:
        return EXIT_DOWN, snap.reasons
    reasons: list[str] = []
    upstream = snap.health.upstream
    if not upstream.reachable:
        reasons.append(f"upstream {upstream.url} unreachable")
    active = active_backend(snap)
    if redis_wanted(snap, settings) and active != "redis":
        reasons.append(
            f"cache fell back to {active or 'unknown'}: Redis is configured "
            f"(backend {configured_backend(snap, settings)}) but not serving"
        )
    elif snap.cache_health is not None and not snap.cache_health.healthy:
        reasons.append("cache reports itself unhealthy")
    if snap.ready is not None and snap.ready.status == "not ready":
        why = list(snap.ready.reasons) or ["no reason given"]
        reasons.append("not ready: " + "; ".join(why))
    return (EXIT_DEGRADED if reasons else EXIT_HEALTHY), reasons


# --------------------------------------------------------------------------- rendering


def _num(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(snap: Snapshot, settings: Settings | None) -> list[str]:
    """The screen: the instance's own one-line summary (when it gave one), then the rows."""
    title = {0: "HEALTHY", 1: "DEGRADED", 2: "DOWN"}[snap.exit_code]
    h = snap.health
    lines = []
    if h is not None and h.summary:
        lines.append(h.summary)
    lines.append(f"guard-proxy at {snap.url}: {title}")
    lines += [f"  ! {reason}" for reason in snap.reasons]
    if not snap.answered or h is None:
        return lines
    rows: list[tuple[str, str]] = []
    started = when(h.started_at, ago=False)
    up = f"up {human_duration(h.uptime_s)}"
    rows.append(("version", f"{h.version}, {up}" + (f" (since {started})" if started else "")))
    reach = "reachable" if h.upstream.reachable else "UNREACHABLE"
    rows.append(("upstream", f"{h.upstream.url} {reach}"))
    active = active_backend(snap) or "unknown"
    if not h.cache.enabled or active == "none":
        rows.append(("cache", "disabled"))
    else:
        configured = configured_backend(snap, settings) or "unknown"
        rows.append(("cache", f"configured {configured}, active {active}"))
        rows.extend(_redis_rows(snap, settings))
        rows.append(("hit rate", _hit_rate(snap.cache_stats)))
        rows.append(("failovers", _failovers(snap.cache_stats)))
    rows.append(("blocks", _blocks_text(snap.blocks)))
    for path, why in snap.missing.items():
        rows.append(("note", f"{path} not available ({why})"))
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name:<{width}}  {text}" for name, text in rows]
    return lines


def _redis_rows(snap: Snapshot, settings: Settings | None) -> list[tuple[str, str]]:
    ch = snap.cache_health
    if not redis_wanted(snap, settings) and active_backend(snap) != "redis":
        return [("redis", "not used")]
    if ch is None:
        state, ping = "state unknown", ""
    else:
        state = "connected" if ch.redis_connected else "NOT CONNECTED"
        ping = f", PING {ch.latency_ms:.2f} ms" if ch.latency_ms is not None else ""
    rows = [("redis", f"{snap.redis_address or 'unknown address'}, {state}{ping}")]
    if ch is not None and not ch.redis_connected and ch.last_error:
        rows.append(("redis error", ch.last_error))
    rd = _redis_stats(snap)
    if rd is None:
        rows.append(("redis keys", "unknown (Redis not serving)"))
        return rows
    prefix = settings.cache.prefix if settings is not None else None
    where = f" under {prefix!r}" if prefix else " under the prefix"
    more = "" if rd.keys_complete else " (at least; count stopped early)"
    rows.append(("redis keys", f"{rd.keys}{where}{more}"))
    limit = "none" if rd.maxmemory == 0 else human_bytes(rd.maxmemory)
    policy = rd.maxmemory_policy
    memory = f"{human_bytes(rd.used_memory)} used, maxmemory {limit}"
    rows.append(("redis memory", memory + (f", policy {policy}" if policy else "")))
    return rows


def plural(count: Any, word: str, words: str | None = None) -> str:
    """``1 failover``, ``2 failovers``, ``0 recoveries`` (``words`` for irregular plurals)."""
    return f"{_num(count)} {word if count == 1 else (words or word + 's')}"


def _hit_rate(st: CacheStatsBody | None) -> str:
    if st is None:
        return "unknown"
    counts = f"{st.hits} hits, {st.misses} misses, {st.sets} sets, {plural(st.errors, 'error')}"
    entries = plural(st.memory_entries, "memory entry", "memory entries")
    return f"{st.hit_rate * 100:.1f} % ({counts}, {entries})"


def _failovers(st: CacheStatsBody | None) -> str:
    """Counts, then the most recent switch and when it happened."""
    if st is None:
        return "unknown"
    text = f"{plural(st.failovers, 'failover')}, {plural(st.recoveries, 'recovery', 'recoveries')}"
    latest: tuple[float, str] | None = None
    for kind, value in (("failover", st.last_failover_at), ("recovery", st.last_recovery_at)):
        if value is not None and (latest is None or value >= latest[0]):
            latest = (value, kind)
    if latest is not None:
        text += f"; last: {latest[1]} {when(latest[0])}"
    return text


def _blocks_text(blocks: dict[str, float] | None) -> str:
    if blocks is None:
        return "unknown"
    if not blocks:
        return "none since start"
    total = sum(blocks.values())
    ordered = sorted(blocks.items(), key=lambda item: (-item[1], item[0]))
    return f"{_num(total)} since start: " + ", ".join(f"{k} {_num(v)}" for k, v in ordered)


def as_json(snap: Snapshot, settings: Settings | None) -> dict[str, Any]:
    return {
        "url": snap.url,
        "state": snap.state,
        "exit_code": snap.exit_code,
        "reasons": snap.reasons,
        "error": snap.error,
        "summary": snap.health.summary if snap.health else None,
        "configured_backend": configured_backend(snap, settings) if snap.answered else None,
        "active_backend": active_backend(snap) if snap.answered else None,
        "redis_address": snap.redis_address,
        "health": snap.docs.get("health", {}),
        "ready": snap.docs.get("ready", {}),
        "cache_health": snap.docs.get("cache_health", {}),
        "cache_stats": snap.docs.get("cache_stats", {}),
        "blocks": snap.blocks,
        "unavailable": snap.missing,
    }


# --------------------------------------------------------------------------- entry point


def run(args: argparse.Namespace) -> int:
    import json

    resolved = resolve_or_report(args)
    if resolved is None:
        return EXIT_DOWN
    url, settings = resolved
    if args.url is not None:
        settings = None  # the local config describes some other instance: guess nothing from it
    snap = gather(url, args.timeout, settings)
    if args.json:
        print(json.dumps(as_json(snap, settings), indent=2, sort_keys=False, default=str))
    else:
        print("\n".join(render(snap, settings)))
    return snap.exit_code
