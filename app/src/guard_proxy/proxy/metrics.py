"""Process metrics rendered by hand in the Prometheus text format (no client library).

Counters and histograms are plain dicts updated on the event loop (single-threaded), so no
locks; cache counters are read from :meth:`GuardCache.counters` (this process alone, no
Redis round trip) and the readiness gauges from :meth:`Readiness.check` at scrape time
(:meth:`Metrics.scrape`). The names are what
``monitoring/`` (alert and recording rules, Grafana dashboard) queries; a test scrapes a
running proxy and checks that every name used there is exported.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from guard_proxy import __version__

if TYPE_CHECKING:
    from guard_proxy.cache import GuardCache
    from guard_proxy.proxy.readiness import Readiness

# The 1-2.5-5 steps both histograms share; each adds its own ends.
_STEPS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCAN_BUCKETS = (0.0001, 0.00025, 0.0005, *_STEPS)
REQUEST_BUCKETS = (*_STEPS, 5.0, 10.0, 30.0, 60.0, 300.0)
FIRST_CHUNK_BUCKETS = (*_STEPS, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """A cumulative histogram with fixed upper bounds (seconds)."""

    __slots__ = ("buckets", "count", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self, name: str, labels: str, out: list[str]) -> None:
        cumulative = 0
        sep = "," if labels else ""
        for bound, n in zip(self.buckets, self.counts, strict=False):
            cumulative += n
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}')
        cumulative += self.counts[-1]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {cumulative}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.count}")


class _Histograms(dict[str, Histogram]):
    """Histograms by label value, each made with ``buckets`` on its first observation."""

    __slots__ = ("buckets",)

    def __init__(self, buckets: tuple[float, ...]) -> None:
        super().__init__()
        self.buckets = buckets

    def __missing__(self, key: str) -> Histogram:
        hist = self[key] = Histogram(self.buckets)
        return hist


def _head(out: list[str], name: str, kind: str, help_text: str) -> None:
    """Append the ``# HELP`` and ``# TYPE`` lines of metric ``name``."""
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """All counters of one proxy process."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.request_time = _Histograms(REQUEST_BUCKETS)
        self.in_flight = 0  # requests being answered now (``/metrics`` itself not counted)
        self.stream_time = _Histograms(REQUEST_BUCKETS)
        self.first_chunk_time = _Histograms(FIRST_CHUNK_BUCKETS)
        self.blocks: dict[tuple[str, str], int] = {}
        self.blocked = 0  # blocked requests (``blocks`` counts per scanner)
        self.blocked_by_direction: dict[str, int] = {}
        self.scan_time = _Histograms(SCAN_BUCKETS)
        self.verdict_time = _Histograms(SCAN_BUCKETS)
        self.scanner_errors: dict[tuple[str, str], int] = {}
        self.upstream_errors = 0
        self.client_disconnects = 0

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.request_time[route].observe(seconds)

    def stream(self, route: str, first_chunk: float | None, seconds: float) -> None:
        """A streamed answer (NDJSON or SSE): time to its first body chunk, and its length."""
        if first_chunk is not None:
            self.first_chunk_time[route].observe(first_chunk)
        self.stream_time[route].observe(seconds)

    def verdict(self, direction: str, seconds: float) -> None:
        """The time one request waited for its verdict: cache lookups, scans on misses."""
        self.verdict_time[direction].observe(seconds)

    def block(self, direction: str, scanners: list[str]) -> None:
        self.blocked += 1
        self.blocked_by_direction[direction] = self.blocked_by_direction.get(direction, 0) + 1
        for scanner in scanners or ["unknown"]:
            key = (scanner, direction)
            self.blocks[key] = self.blocks.get(key, 0) + 1

    def scan(self, direction: str, seconds: float) -> None:
        self.scan_time[direction].observe(seconds)

    def scanner_error(self, direction: str, mode: str) -> None:
        key = (direction, mode)
        self.scanner_errors[key] = self.scanner_errors.get(key, 0) + 1

    async def scrape(self, cache: GuardCache, readiness: Readiness) -> str:
        """``GET /metrics``: the counters, plus the cache's counters and readiness asked now.

        ``cache`` is the :class:`GuardCache`, ``readiness`` the app's :class:`Readiness` (its
        upstream probe is shared and reused for a second, as for ``/ready``). The cache is
        read through ``counters()``, never ``stats()``: Redis memory and key counts (INFO,
        SCAN) are not rendered, so a scrape sends Redis nothing. Neither may break the
        scrape: what fails is reported as unknown (not ready, no backend).
        """
        stats: Mapping[str, object]
        try:
            stats = cache.counters().model_dump()
        except Exception:  # the cache must never break the metrics
            stats = {"active_backend": str(getattr(cache, "active_backend", None) or "none")}
        state = {"ready": 0, "draining": int(bool(getattr(readiness, "draining", False)))}
        try:
            report = await readiness.check()
            state["ready"] = int(report.ready)
            state["upstream_up"] = int(report.checks.upstream.ok)
        except Exception:  # readiness reports, it never raises; still, never fail the scrape
            pass
        wanted = bool(getattr(cache, "wants_redis", False))
        state["redis_wanted"] = int(wanted)
        state["degraded"] = int(wanted and stats.get("active_backend") != "redis")
        return self.render(stats, state)

    def render(
        self, cache_stats: Mapping[str, Any] | None, state: Mapping[str, int] | None = None
    ) -> str:
        """The Prometheus text exposition of every metric.

        ``state`` holds the gauges asked at scrape time (``ready``, ``draining``,
        ``upstream_up``, ``redis_wanted``, ``degraded``); missing ones are not exported.
        """
        out: list[str] = []
        _head(out, "guard_proxy_requests_total", "counter", "Requests by route, method and status.")
        for (route, method, status), n in sorted(self.requests.items()):
            out.append(
                f'guard_proxy_requests_total{{route="{_esc(route)}",method="{method}",'
                f'status="{status}"}} {n}'
            )
        _head(
            out, "guard_proxy_request_duration_seconds", "histogram", "Request duration by route."
        )
        for route, hist in sorted(self.request_time.items()):
            hist.render("guard_proxy_request_duration_seconds", f'route="{_esc(route)}"', out)
        _head(
            out,
            "guard_proxy_stream_first_chunk_seconds",
            "histogram",
            "Streamed answers: time to the first body chunk released to the client "
            "(time to first token), by route.",
        )
        for route, hist in sorted(self.first_chunk_time.items()):
            hist.render("guard_proxy_stream_first_chunk_seconds", f'route="{_esc(route)}"', out)
        _head(
            out,
            "guard_proxy_stream_duration_seconds",
            "histogram",
            "Streamed answers: duration from request to the last chunk, by route.",
        )
        for route, hist in sorted(self.stream_time.items()):
            hist.render("guard_proxy_stream_duration_seconds", f'route="{_esc(route)}"', out)
        _head(
            out,
            "guard_proxy_blocked_requests_total",
            "counter",
            "Requests blocked, by direction (blocks_total counts each scanner).",
        )
        for direction, n in sorted(self.blocked_by_direction.items()):
            out.append(f'guard_proxy_blocked_requests_total{{direction="{direction}"}} {n}')
        _head(out, "guard_proxy_blocks_total", "counter", "Guard blocks by scanner and direction.")
        for (scanner, direction), n in sorted(self.blocks.items()):
            out.append(
                f'guard_proxy_blocks_total{{scanner="{_esc(scanner)}",direction="{direction}"}} {n}'
            )
        _head(
            out,
            "guard_proxy_scan_duration_seconds",
            "histogram",
            "Time spent scanning (cache misses).",
        )
        for direction, hist in sorted(self.scan_time.items()):
            hist.render("guard_proxy_scan_duration_seconds", f'direction="{direction}"', out)
        _head(
            out,
            "guard_proxy_verdict_duration_seconds",
            "histogram",
            "Time a request waits for its verdict (cache lookups, scans on misses), by direction.",
        )
        for direction, hist in sorted(self.verdict_time.items()):
            hist.render("guard_proxy_verdict_duration_seconds", f'direction="{direction}"', out)
        _head(out, "guard_proxy_scanner_errors_total", "counter", "Scanner failures by fail mode.")
        for (direction, mode), n in sorted(self.scanner_errors.items()):
            out.append(
                f'guard_proxy_scanner_errors_total{{direction="{direction}",'
                f'fail_mode="{mode}"}} {n}'
            )
        _head(
            out, "guard_proxy_upstream_errors_total", "counter", "Ollama unreachable or timed out."
        )
        out.append(f"guard_proxy_upstream_errors_total {self.upstream_errors}")
        _head(
            out, "guard_proxy_client_disconnects_total", "counter", "Clients gone before the end."
        )
        out.append(f"guard_proxy_client_disconnects_total {self.client_disconnects}")
        _render_cache(cache_stats, out)
        _head(out, "guard_proxy_build_info", "gauge", "The running version (always 1).")
        out.append(f'guard_proxy_build_info{{version="{_esc(__version__)}"}} 1')
        _head(
            out, "guard_proxy_start_time_seconds", "gauge", "Process start, Unix time in seconds."
        )
        out.append(f"guard_proxy_start_time_seconds {self.started:.3f}")
        _render_state(state or {}, out)
        _head(
            out,
            "guard_proxy_requests_in_flight",
            "gauge",
            "Requests being answered now (scrapes of /metrics not counted).",
        )
        out.append(f"guard_proxy_requests_in_flight {self.in_flight}")
        return "\n".join(out) + "\n"


_CACHE_COUNTERS = (
    ("hits", "Verdict cache hits."),
    ("misses", "Verdict cache misses."),
    ("errors", "Verdict cache backend errors."),
    ("sets", "Verdicts stored."),
    ("failovers", "Switches from Redis to memory."),
    ("recoveries", "Switches from memory back to Redis."),
)


_STATE_GAUGES = (
    ("ready", "guard_proxy_ready", "1 while /ready would answer 200."),
    ("draining", "guard_proxy_draining", "1 once the process is shutting down."),
    ("upstream_up", "guard_proxy_upstream_up", "1 while Ollama answers the upstream probe."),
    (
        "redis_wanted",
        "guard_proxy_cache_redis_wanted",
        "1 when the configuration wants Redis (backend auto or redis, redis.enabled).",
    ),
    (
        "degraded",
        "guard_proxy_cache_degraded",
        "1 while Redis is wanted but the cache serves from memory.",
    ),
)
# The cache's hits by where they were found (stats key, level label).
_CACHE_LEVELS = (("memory_hits", "memory"), ("redis_hits", "redis"), ("coalesced", "coalesced"))


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _render_state(state: Mapping[str, int], out: list[str]) -> None:
    for key, name, help_text in _STATE_GAUGES:
        if key in state:
            _head(out, name, "gauge", help_text)
            out.append(f"{name} {state[key]}")


def _render_cache(stats: Mapping[str, Any] | None, out: list[str]) -> None:
    stats = stats or {}
    for key, help_text in _CACHE_COUNTERS:
        name = f"guard_proxy_cache_{key}_total"
        _head(out, name, "counter", help_text)
        out.append(f"{name} {_count(stats.get(key, 0))}")
    _head(
        out,
        "guard_proxy_cache_level_hits_total",
        "counter",
        "Cache hits by level: memory (L1), redis (L2), coalesced (joined a scan in flight).",
    )
    for key, level in _CACHE_LEVELS:
        hits = _count(stats.get(key))
        out.append(f'guard_proxy_cache_level_hits_total{{level="{level}"}} {hits}')
    _head(out, "guard_proxy_cache_memory_entries", "gauge", "Entries in the memory backend.")
    entries = stats.get("memory_entries", 0)
    out.append(f"guard_proxy_cache_memory_entries {entries if isinstance(entries, int) else 0}")
    _head(
        out,
        "guard_proxy_cache_active_backend",
        "gauge",
        "The backend serving the cache (1 = active).",
    )
    active = stats.get("active_backend", "none")
    for backend in ("redis", "memory", "none"):
        out.append(
            f'guard_proxy_cache_active_backend{{backend="{backend}"}} {int(active == backend)}'
        )
