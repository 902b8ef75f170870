"""Process metrics rendered by hand in the Prometheus text format (no client library).

Counters and histograms are plain dicts updated on the event loop (single-threaded), so no
locks; cache counters are read from :meth:`GuardCache.stats` at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

# The 1-2.5-5 steps both histograms share; each adds its own ends.
_STEPS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCAN_BUCKETS = (0.0001, 0.00025, 0.0005, *_STEPS)
REQUEST_BUCKETS = (*_STEPS, 5.0, 10.0, 30.0, 60.0, 300.0)


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
        self.requests: dict[tuple[str, str, int], int] = {}
        self.request_time = _Histograms(REQUEST_BUCKETS)
        self.blocks: dict[tuple[str, str], int] = {}
        self.blocked = 0  # blocked requests (``blocks`` counts per scanner)
        self.scan_time = _Histograms(SCAN_BUCKETS)
        self.scanner_errors: dict[tuple[str, str], int] = {}
        self.upstream_errors = 0
        self.client_disconnects = 0

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.request_time[route].observe(seconds)

    def block(self, direction: str, scanners: list[str]) -> None:
        self.blocked += 1
        for scanner in scanners or ["unknown"]:
            key = (scanner, direction)
            self.blocks[key] = self.blocks.get(key, 0) + 1

    def scan(self, direction: str, seconds: float) -> None:
        self.scan_time[direction].observe(seconds)

    def scanner_error(self, direction: str, mode: str) -> None:
        key = (direction, mode)
        self.scanner_errors[key] = self.scanner_errors.get(key, 0) + 1

    def render(self, cache_stats: Mapping[str, Any] | None) -> str:
        """The Prometheus text exposition of every metric."""
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
        return "\n".join(out) + "\n"


_CACHE_COUNTERS = (
    ("hits", "Verdict cache hits."),
    ("misses", "Verdict cache misses."),
    ("errors", "Verdict cache backend errors."),
    ("sets", "Verdicts stored."),
    ("failovers", "Switches from Redis to memory."),
    ("recoveries", "Switches from memory back to Redis."),
)


def _render_cache(stats: Mapping[str, Any] | None, out: list[str]) -> None:
    stats = stats or {}
    for key, help_text in _CACHE_COUNTERS:
        name = f"guard_proxy_cache_{key}_total"
        _head(out, name, "counter", help_text)
        value = stats.get(key, 0)
        out.append(f"{name} {int(value) if isinstance(value, int | float) else 0}")
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
