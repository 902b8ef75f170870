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
from typing import TYPE_CHECKING, Any

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
    """Everything ``status`` learned about one instance."""

    url: str
    answered: bool = False
    error: str | None = None
    health: dict[str, Any] = field(default_factory=dict)
    ready: dict[str, Any] = field(default_factory=dict)
    cache_health: dict[str, Any] = field(default_factory=dict)
    cache_stats: dict[str, Any] = field(default_factory=dict)
    blocks: dict[str, float] | None = None
    missing: dict[str, str] = field(default_factory=dict)
    redis_address: str | None = None
    reasons: list[str] = field(default_factory=list)
    exit_code: int = EXIT_DOWN

    @property
    def state(self) -> str:
        return {EXIT_HEALTHY: "healthy", EXIT_DEGRADED: "degraded"}.get(self.exit_code, "down")


def gather(url: str, timeout: float, settings: Settings | None) -> Snapshot:
    snap = Snapshot(url=url)
    health, why = get_json(f"{url}/health", timeout)
    if not isinstance(health, dict):
        error = (why or "no answer") if health is None else "unexpected /health answer"
        if error.startswith("HTTP 403"):
            error += " (is this host in access.allow?)"
        snap.error = error
        snap.reasons.append(f"instance not answering: {error}")
        return snap
    snap.answered = True
    snap.health = health
    for name, path in (
        ("ready", "/ready"),
        ("cache_health", "/cache/health"),
        ("cache_stats", "/cache/stats"),
    ):
        doc, why = get_json(f"{url}{path}", timeout)
        if isinstance(doc, dict):
            setattr(snap, name, doc)
        else:
            snap.missing[path] = why or "unexpected answer"
    snap.blocks = _blocks(url, timeout, snap)
    snap.redis_address = _redis_address(snap, settings)
    snap.exit_code, snap.reasons = judge(snap, settings)
    return snap


def _blocks(url: str, timeout: float, snap: Snapshot) -> dict[str, float] | None:
    try:
        reply = request(f"{url}/metrics", timeout=timeout)
    except Unreachable as exc:
        snap.missing["/metrics"] = str(exc)
        return None
    if reply.status != 200:
        snap.missing["/metrics"] = f"HTTP {reply.status}"
        return None
    return blocks_by_scanner(parse(reply.body.decode("utf-8", "replace")))


def _redis_address(snap: Snapshot, settings: Settings | None) -> str | None:
    """``host:port/db`` as the instance reports it (never credentials); else from config."""
    for value in (snap.cache_health.get("redis_address"), _redis_doc(snap).get("address")):
        if isinstance(value, str) and value:
            return value
    if settings is not None and not snap.cache_health:
        from guard_proxy.cache.redis_client import redis_address

        return f"{redis_address(settings.redis)} (from config)"
    return None


def _redis_doc(snap: Snapshot) -> dict[str, Any]:
    """The ``redis`` section of ``/cache/stats`` (memory, keys; only while connected)."""
    doc = snap.cache_stats.get("redis")
    return doc if isinstance(doc, dict) else {}


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def configured_backend(snap: Snapshot, settings: Settings | None) -> str | None:
    return _opt_str(
        _first(
            snap.cache_health.get("configured_backend"),
            snap.cache_stats.get("configured_backend"),
            (snap.health.get("cache") or {}).get("configured_backend"),
            settings.cache.backend if settings is not None else None,
        )
    )


def active_backend(snap: Snapshot) -> str | None:
    return _opt_str(
        _first(
            snap.cache_health.get("active_backend"),
            (snap.health.get("cache") or {}).get("active_backend"),
            snap.cache_stats.get("active_backend"),
        )
    )


def redis_wanted(snap: Snapshot, settings: Settings | None) -> bool:
    """True when the instance should be serving from Redis.

    ``/cache/health`` names a Redis address exactly when the instance wants Redis (backend
    ``auto``/``redis`` with ``redis.enabled``); without that answer, the local config decides.
    """
    cache = snap.health.get("cache") or {}
    if cache.get("enabled") is False or active_backend(snap) == "none":
        return False
    if "redis_address" in snap.cache_health:
        return snap.cache_health["redis_address"] is not None
    if settings is not None and not settings.redis.enabled:
        return False
    return configured_backend(snap, settings) in ("auto", "redis")


def judge(snap: Snapshot, settings: Settings | None) -> tuple[int, list[str]]:
    """Exit code and reasons: 0 healthy, 1 degraded (serving), 2 down."""
    if not snap.answered:
        return EXIT_DOWN, snap.reasons
    reasons: list[str] = []
    upstream = snap.health.get("upstream") or {}
    if upstream.get("reachable") is False:
        reasons.append(f"upstream {upstream.get('url', 'Ollama')} unreachable")
    active = active_backend(snap)
    if redis_wanted(snap, settings) and active != "redis":
        reasons.append(
            f"cache fell back to {active or 'unknown'}: Redis is configured "
            f"(backend {configured_backend(snap, settings)}) but not serving"
        )
    elif snap.cache_health.get("healthy") is False:
        reasons.append("cache reports itself unhealthy")
    if snap.ready.get("status") == "not ready":
        why = [str(r) for r in snap.ready.get("reasons") or []] or ["no reason given"]
        reasons.append("not ready: " + "; ".join(why))
    if snap.health.get("status") not in (None, "ok"):
        reasons.append(f"instance reports status {snap.health.get('status')!r}")
    return (EXIT_DEGRADED if reasons else EXIT_HEALTHY), reasons


# --------------------------------------------------------------------------- rendering


def _yes_no(value: Any, yes: str, no: str, unknown: str = "unknown") -> str:
    return yes if value is True else no if value is False else unknown


def _num(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render(snap: Snapshot, settings: Settings | None) -> list[str]:
    """The screen: the instance's own one-line summary (when it gave one), then the rows."""
    title = {0: "HEALTHY", 1: "DEGRADED", 2: "DOWN"}[snap.exit_code]
    lines = []
    line = snap.health.get("summary")
    if isinstance(line, str) and line:
        lines.append(line)
    lines.append(f"guard-proxy at {snap.url}: {title}")
    lines += [f"  ! {reason}" for reason in snap.reasons]
    if not snap.answered:
        return lines
    h, ch, st = snap.health, snap.cache_health, snap.cache_stats
    rows: list[tuple[str, str]] = []
    version = h.get("version") or "unknown"
    uptime = h.get("uptime_s")
    started = when(h.get("started_at"), ago=False)
    up = f"up {human_duration(uptime)}" if uptime is not None else "uptime unknown"
    rows.append(("version", f"{version}, {up}" + (f" (since {started})" if started else "")))
    upstream = h.get("upstream") or {}
    reach = _yes_no(upstream.get("reachable"), "reachable", "UNREACHABLE")
    rows.append(("upstream", f"{upstream.get('url', 'unknown')} {reach}"))
    cache = h.get("cache") or {}
    active = active_backend(snap) or "unknown"
    if cache.get("enabled") is False or active == "none":
        rows.append(("cache", "disabled"))
    else:
        configured = configured_backend(snap, settings) or "unknown"
        rows.append(("cache", f"configured {configured}, active {active}"))
        rows.extend(_redis_rows(snap, settings))
        rows.append(("hit rate", _hit_rate(st)))
        rows.append(("failovers", _failovers(st, ch)))
    rows.append(("blocks", _blocks_text(snap.blocks)))
    for path, why in snap.missing.items():
        rows.append(("note", f"{path} not available ({why})"))
    width = max(len(name) for name, _ in rows)
    lines += [f"  {name:<{width}}  {text}" for name, text in rows]
    return lines


def _redis_rows(snap: Snapshot, settings: Settings | None) -> list[tuple[str, str]]:
    ch, st = snap.cache_health, snap.cache_stats
    if not redis_wanted(snap, settings) and active_backend(snap) != "redis":
        return [("redis", "not used")]
    connected = _first(ch.get("redis_connected"), st.get("redis_connected"))
    state = _yes_no(connected, "connected", "NOT CONNECTED", "state unknown")
    latency = ch.get("latency_ms")
    ping = f", PING {float(latency):.2f} ms" if isinstance(latency, int | float) else ""
    rows = [("redis", f"{snap.redis_address or 'unknown address'}, {state}{ping}")]
    if connected is False and ch.get("last_error"):
        rows.append(("redis error", str(ch["last_error"])))
    rd = _redis_doc(snap)
    if not rd:
        rows.append(("redis keys", "unknown (Redis not serving)"))
        return rows
    prefix = settings.cache.prefix if settings is not None else None
    where = f" under {prefix!r}" if prefix else " under the prefix"
    more = "" if rd.get("keys_complete", True) else " (at least; count stopped early)"
    rows.append(("redis keys", f"{_num(rd.get('keys'))}{where}{more}"))
    maxmem = rd.get("maxmemory")
    limit = "none" if maxmem in (0, "0") else human_bytes(maxmem)
    policy = rd.get("maxmemory_policy")
    memory = f"{human_bytes(rd.get('used_memory'))} used, maxmemory {limit}"
    rows.append(("redis memory", memory + (f", policy {policy}" if policy else "")))
    return rows


def plural(count: Any, word: str, words: str | None = None) -> str:
    """``1 failover``, ``2 failovers``, ``0 recoveries`` (``words`` for irregular plurals)."""
    return f"{_num(count)} {word if count == 1 else (words or word + 's')}"


def _hit_rate(st: dict[str, Any]) -> str:
    if not st:
        return "unknown"
    rate = st.get("hit_rate")
    text = f"{float(rate) * 100:.1f} %" if isinstance(rate, int | float) else "unknown"
    parts = [
        f"{_num(st[k])} {k}" if k != "errors" else plural(st[k], "error")
        for k in ("hits", "misses", "sets", "errors")
        if k in st
    ]
    if "memory_entries" in st:
        parts.append(plural(st["memory_entries"], "memory entry", "memory entries"))
    return text + (f" ({', '.join(parts)})" if parts else "")


def _failovers(st: dict[str, Any], ch: dict[str, Any]) -> str:
    """Counts, then the most recent switch and when it happened."""
    if "failovers" not in st and "recoveries" not in st:
        return "unknown"
    text = (
        f"{plural(st.get('failovers'), 'failover')}, "
        f"{plural(st.get('recoveries'), 'recovery', 'recoveries')}"
    )
    latest: tuple[float, str, Any] | None = None
    for kind, key in (("failover", "last_failover_at"), ("recovery", "last_recovery_at")):
        value = _first(st.get(key), ch.get(key))
        if value in (None, ""):
            continue
        order = float(value) if isinstance(value, int | float) else 0.0
        if latest is None or order >= latest[0]:
            latest = (order, kind, value)
    if latest is not None:
        text += f"; last: {latest[1]} {when(latest[2])}"
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
        "summary": snap.health.get("summary"),
        "configured_backend": configured_backend(snap, settings) if snap.answered else None,
        "active_backend": active_backend(snap) if snap.answered else None,
        "redis_address": snap.redis_address,
        "health": snap.health,
        "ready": snap.ready,
        "cache_health": snap.cache_health,
        "cache_stats": snap.cache_stats,
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
