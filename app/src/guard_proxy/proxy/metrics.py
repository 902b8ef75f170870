"""Process metrics with prometheus_client; across workers in its multiprocess mode.

Every family is a prometheus_client metric in this :class:`Metrics`' own registry:
request-path counters and histograms are updated where things happen; the cache's counters
(kept by :class:`~guard_proxy.cache.GuardCache`, this process alone, no Redis round trip)
are added to their counters as they grew, and the per-process gauges (readiness, cache
backend, build, start time) are asked at scrape time (:meth:`Metrics.scrape`). The names,
labels and help texts are what ``monitoring/`` (alert and recording rules, Grafana
dashboard) queries; a test scrapes a running proxy and checks every name used there.

**Workers** (``server.workers`` > 1): the supervisor names a private, empty directory in
``$PROMETHEUS_MULTIPROC_DIR`` before any worker imports prometheus_client, so every value
lives in that directory's memory-mapped files (prometheus_client's multiprocess mode) and
a scrape, whichever worker the kernel gives it to, merges all of them live
(``MultiProcessCollector``): counters and histograms are summed over every process that
ever ran in this service instance, the dead ones included, so a killed worker never makes
a counter go down; ``guard_proxy_requests_in_flight`` is summed over the live workers; the
per-process gauges carry a ``worker`` label (the supervisor's slot, kept across restarts)
and a dead worker's are dropped (the supervisor calls ``mark_process_dead``). Every worker
refreshes its own gauges and cache counters about once a second (:meth:`Metrics.refresh`),
the scraped one right before it answers.

**Adding a counter** (e.g. ``guard_proxy_redactions_total{kind}``): declare it in
:meth:`Metrics.__init__` with ``self.counter(name, help, labels)`` and count with
``self.<attr>.labels(kind).inc()`` in a method of :class:`Metrics` (the callers pass the
:class:`Metrics`); nothing else is needed, workers included. Name it without ``_total``
(prometheus_client adds it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from guard_proxy import __version__

if TYPE_CHECKING:
    from guard_proxy.cache import GuardCache
    from guard_proxy.proxy.readiness import Readiness

__all__ = [
    "FIRST_CHUNK_BUCKETS",
    "MULTIPROC_ENV",
    "REQUEST_BUCKETS",
    "SCAN_BUCKETS",
    "Metrics",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable: the directory of the workers' metric files."""

# The exposition never had the ``_created`` series prometheus_client adds by default.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The 1-2.5-5 steps both histograms share; each adds its own ends.
_STEPS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCAN_BUCKETS = (0.0001, 0.00025, 0.0005, *_STEPS)
REQUEST_BUCKETS = (*_STEPS, 5.0, 10.0, 30.0, 60.0, 300.0)
FIRST_CHUNK_BUCKETS = (*_STEPS, 5.0, 10.0, 30.0, 60.0)

# The cache's counters: (stats key, metric name without _total, help).
_CACHE_COUNTERS = (
    ("hits", "guard_proxy_cache_hits", "Verdict cache hits."),
    ("misses", "guard_proxy_cache_misses", "Verdict cache misses."),
    ("errors", "guard_proxy_cache_errors", "Verdict cache backend errors."),
    ("sets", "guard_proxy_cache_sets", "Verdicts stored."),
    ("failovers", "guard_proxy_cache_failovers", "Switches from Redis to memory."),
    ("recoveries", "guard_proxy_cache_recoveries", "Switches from memory back to Redis."),
)
# The cache's hits by where they were found (stats key, level label).
_CACHE_LEVELS = (("memory_hits", "memory"), ("redis_hits", "redis"), ("coalesced", "coalesced"))
_BACKENDS = ("redis", "memory", "none")

# Per-process gauges: (key, name, help, extra label). Missing keys are not exported.
_STATE_GAUGES = (
    ("memory_entries", "guard_proxy_cache_memory_entries", "Entries in the memory backend.", ""),
    (
        "active_backend",
        "guard_proxy_cache_active_backend",
        "The backend serving the cache (1 = active).",
        "backend",
    ),
    ("build_info", "guard_proxy_build_info", "The running version (always 1).", "version"),
    ("start_time", "guard_proxy_start_time_seconds", "Process start, Unix time in seconds.", ""),
    ("ready", "guard_proxy_ready", "1 while /ready would answer 200.", ""),
    ("draining", "guard_proxy_draining", "1 once the process is shutting down.", ""),
    ("upstream_up", "guard_proxy_upstream_up", "1 while Ollama answers the upstream probe.", ""),
    (
        "redis_wanted",
        "guard_proxy_cache_redis_wanted",
        "1 when the configuration wants Redis (backend auto or redis, redis.enabled).",
        "",
    ),
    (
        "degraded",
        "guard_proxy_cache_degraded",
        "1 while Redis is wanted but the cache serves from memory.",
        "",
    ),
)

State = Mapping[str, float | Mapping[str, float]]
"""Per-process gauge values by key; a labelled one maps its label value to the value."""


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


class _StateCollector:
    """The per-process gauges of a single process, as last set (only the known ones)."""

    def __init__(self) -> None:
        self.values: dict[str, float | Mapping[str, float]] = {}

    def collect(self) -> Iterator[Metric]:
        for key, name, help_text, label in _STATE_GAUGES:
            value = self.values.get(key)
            if value is None:
                continue
            family = GaugeMetricFamily(name, help_text, labels=[label] if label else None)
            if isinstance(value, Mapping):
                for label_value, v in value.items():
                    family.add_metric([label_value], v)
            else:
                family.add_metric([], value)
            yield family


class Metrics:
    """All metrics of one proxy process (see the module docstring).

    **Parameters:**

    * **multiproc_dir** - the workers' shared directory; default ``$PROMETHEUS_MULTIPROC_DIR``
      (set by the supervisor). None: this process alone.
    * **worker** - this worker's slot (the ``worker`` label of its per-process gauges);
      default ``$GUARD_PROXY_WORKER``.
    """

    def __init__(self, multiproc_dir: str | None = None, worker: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir or os.environ.get(MULTIPROC_ENV) or None
        if self.multiproc_dir is not None and values.ValueClass.__name__ != "MmapedValue":
            raise RuntimeError(
                f"${MULTIPROC_ENV} was set after prometheus_client was imported: "
                "the metrics of this worker would not be shared"
            )
        self.worker = worker or os.environ.get("GUARD_PROXY_WORKER") or "0"
        self.registry = CollectorRegistry()
        self.started = time.time()
        self.request_count = 0  # this process's requests and blocked requests (STATUS line)
        self.blocked = 0
        self._in_flight = 0

        counter, histogram = self.counter, self.histogram
        self.requests = counter(
            "guard_proxy_requests", "Requests by route, method and status.", "route method status"
        )
        self.request_time = histogram(
            "guard_proxy_request_duration_seconds", "Request duration by route.", REQUEST_BUCKETS
        )
        self.first_chunk_time = histogram(
            "guard_proxy_stream_first_chunk_seconds",
            "Streamed answers: time to the first body chunk released to the client "
            "(time to first token), by route.",
            FIRST_CHUNK_BUCKETS,
        )
        self.stream_time = histogram(
            "guard_proxy_stream_duration_seconds",
            "Streamed answers: duration from request to the last chunk, by route.",
            REQUEST_BUCKETS,
        )
        self.blocked_requests = counter(
            "guard_proxy_blocked_requests",
            "Requests blocked, by direction (blocks_total counts each scanner).",
            "direction",
        )
        self.blocks = counter(
            "guard_proxy_blocks", "Guard blocks by scanner and direction.", "scanner direction"
        )
        self.redactions = counter(
            "guard_proxy_redactions",
            "Values masked by placeholders, by direction and kind.",
            "direction kind",
        )
        self.scan_time = histogram(
            "guard_proxy_scan_duration_seconds",
            "Time spent scanning (cache misses).",
            SCAN_BUCKETS,
            label="direction",
        )
        self.verdict_time = histogram(
            "guard_proxy_verdict_duration_seconds",
            "Time a request waits for its verdict (cache lookups, scans on misses), by direction.",
            SCAN_BUCKETS,
            label="direction",
        )
        self.scanner_errors = counter(
            "guard_proxy_scanner_errors", "Scanner failures by fail mode.", "direction fail_mode"
        )
        self.upstream_errors = counter(
            "guard_proxy_upstream_errors", "Ollama unreachable or timed out."
        )
        self.client_disconnects = counter(
            "guard_proxy_client_disconnects", "Clients gone before the end."
        )
        self.cache_counters = {
            key: counter(name, help_text) for key, name, help_text in _CACHE_COUNTERS
        }
        self.cache_levels = counter(
            "guard_proxy_cache_level_hits",
            "Cache hits by level: memory (L1), redis (L2), coalesced (joined a scan in flight).",
            "level",
        )
        for _, level in _CACHE_LEVELS:
            self.cache_levels.labels(level)
        self._cache_seen: dict[str, int] = {}
        self._in_flight_gauge = Gauge(
            "guard_proxy_requests_in_flight",
            "Requests being answered now (scrapes of /metrics not counted).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        if self.multiproc_dir is None:
            self._in_flight_gauge.set_function(lambda: self._in_flight)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._stream_children: dict[str, tuple[Any, Any]] = {}
        self._verdict_children: dict[str, Any] = {}
        self._scan_children: dict[str, Any] = {}
        # Per-process gauges: a collector of this process alone, or (workers) gauges with a
        # ``worker`` label in the shared files, dropped when the worker dies.
        self._state = _StateCollector()
        self._state_gauges: dict[str, Gauge] = {}
        if self.multiproc_dir is None:
            self.registry.register(self._state)
        else:
            for key, name, help_text, label in _STATE_GAUGES:
                self._state_gauges[key] = Gauge(
                    name,
                    help_text,
                    ["worker", label] if label else ["worker"],
                    registry=None,
                    multiprocess_mode="livemostrecent",
                )
        self._set_state({"build_info": {__version__: 1}, "start_time": round(self.started, 3)})

    # ------------------------------------------------------------------ declaring

    def counter(self, name: str, help_text: str, labels: str = "") -> Counter:
        """A counter in this registry (``labels``: names separated by spaces)."""
        return Counter(name, help_text, labels.split(), registry=self.registry)

    def histogram(
        self, name: str, help_text: str, buckets: tuple[float, ...], label: str = "route"
    ) -> Histogram:
        """A histogram by one label, with fixed upper bounds (seconds)."""
        return Histogram(name, help_text, [label], registry=self.registry, buckets=buckets)

    # ------------------------------------------------------------------ counting

    @property
    def in_flight(self) -> int:
        """Requests being answered now (``/metrics`` itself not counted)."""
        return self._in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self._in_flight = value
        if self.multiproc_dir is not None:  # one process reads it at scrape time instead
            self._in_flight_gauge.set(value)

    # The request path looks each label set's children up once (a dict hit instead of
    # prometheus_client's ``labels()``, which locks and checks the labels on every call).

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.request_count += 1
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(status)),
                self.request_time.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def stream(self, route: str, first_chunk: float | None, seconds: float) -> None:
        """A streamed answer (NDJSON or SSE): time to its first body chunk, and its length."""
        children = self._stream_children.get(route)
        if children is None:
            children = self._stream_children[route] = (
                self.first_chunk_time.labels(route),
                self.stream_time.labels(route),
            )
        if first_chunk is not None:
            children[0].observe(first_chunk)
        children[1].observe(seconds)

    def verdict(self, direction: str, seconds: float) -> None:
        """The time one request waited for its verdict: cache lookups, scans on misses."""
        child = self._verdict_children.get(direction)
        if child is None:
            child = self._verdict_children[direction] = self.verdict_time.labels(direction)
        child.observe(seconds)

    def block(self, direction: str, scanners: list[str]) -> None:
        self.blocked += 1
        self.blocked_requests.labels(direction).inc()
        for scanner in scanners or ["unknown"]:
            self.blocks.labels(scanner, direction).inc()

    def scan(self, direction: str, seconds: float) -> None:
        child = self._scan_children.get(direction)
        if child is None:
            child = self._scan_children[direction] = self.scan_time.labels(direction)
        child.observe(seconds)

    def redacted(self, direction: str, counts: Mapping[str, int]) -> None:
        """Values masked by placeholders, by kind (input: distinct values of a request)."""
        for kind, n in counts.items():
            self.redactions.labels(direction, kind).inc(n)

    def scanner_error(self, direction: str, mode: str) -> None:
        self.scanner_errors.labels(direction, mode).inc()

    def upstream_error(self) -> None:
        self.upstream_errors.inc()

    def client_disconnect(self) -> None:
        self.client_disconnects.inc()

    # ------------------------------------------------------------------ scraping

    async def refresh(self, cache: GuardCache, readiness: Readiness) -> None:
        """Ask the cache's counters and readiness now and set them (see :meth:`scrape`)."""
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
        self.update(stats, state)

    async def scrape(self, cache: GuardCache, readiness: Readiness) -> str:
        """``GET /metrics``: every metric, with the cache's counters and readiness asked now.

        ``cache`` is the :class:`GuardCache`, ``readiness`` the app's :class:`Readiness` (its
        upstream probe is shared and reused for a second, as for ``/ready``). The cache is
        read through ``counters()``, never ``stats()``: Redis memory and key counts (INFO,
        SCAN) are not exported, so a scrape sends Redis nothing. Neither may break the
        scrape: what fails is reported as unknown (not ready, no backend).
        """
        await self.refresh(cache, readiness)
        return self.render()

    def update(self, cache_stats: Mapping[str, Any] | None, state: Mapping[str, int]) -> None:
        """Add what the cache counted since the last update, and set the per-process gauges
        (``state``: ``ready``, ``draining``, ``upstream_up``, ``redis_wanted``, ``degraded``)."""
        stats = cache_stats or {}
        for key, counter in self.cache_counters.items():
            self._add(key, stats.get(key), counter)
        for key, level in _CACHE_LEVELS:
            self._add(key, stats.get(key), self.cache_levels.labels(level))
        entries = stats.get("memory_entries", 0)
        active = stats.get("active_backend", "none")
        self._set_state(
            {
                "memory_entries": entries if isinstance(entries, int) else 0,
                "active_backend": {b: int(active == b) for b in _BACKENDS},
                **state,
            }
        )

    def render(
        self, cache_stats: Mapping[str, Any] | None = None, state: Mapping[str, int] | None = None
    ) -> str:
        """The Prometheus text exposition: this process's, or every worker's merged
        (after :meth:`update` with ``cache_stats`` and ``state`` when given)."""
        if cache_stats is not None or state is not None:
            self.update(cache_stats, state or {})
        if self.multiproc_dir is None:
            return generate_latest(self.registry).decode()
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged).decode()

    def _add(self, key: str, value: Any, counter: Counter) -> None:
        now, seen = _count(value), self._cache_seen.get(key, 0)
        if now > seen:
            counter.inc(now - seen)
            self._cache_seen[key] = now

    def _set_state(self, values: State) -> None:
        self._state.values.update(values)
        if self.multiproc_dir is None:
            return
        for key, value in values.items():
            gauge = self._state_gauges[key]
            if isinstance(value, Mapping):
                for label_value, v in value.items():
                    gauge.labels(self.worker, label_value).set(v)
            else:
                gauge.labels(self.worker).set(value)
