"""The one-line summary of an instance, and the systemd side of it (``STATUS=``, ``WATCHDOG=1``).

:func:`summary` is what ``systemctl status guard-proxy`` shows as ``Status:``, what
``GET /health`` returns as ``summary`` and what ``guard-proxy status`` prints first::

  ready · cache redis 10.0.0.5:6379 (0.3 ms) · upstream ok · 12,345 req, 17 blocked
  DEGRADED · cache memory since 12:03:04 UTC (redis1:6379 timeout) · upstream ok · 9 req, 0 blocked

It holds states, addresses, counts and fixed words only: never a secret, a Redis error text
or prompt text. :func:`status_facts` gives the same as data (:class:`StatusFacts`); a
worker of a supervisor sends it along with its ``STATUS=`` line (as ``X_GUARD_PROXY_STATUS=``
JSON, to the supervisor's socket only), and the supervisor merges its workers' facts.
:class:`SystemdReporter` runs beside the server on the event loop, never on the request
path: the cache calls a listener (setting an event) when its backend changes, and the
reporter sends ``STATUS=`` on every change of state and every :data:`REFRESH` seconds with
fresh counters; with ``$WATCHDOG_USEC`` it sends ``WATCHDOG=1`` every half
interval from the loop itself, so a blocked loop stops the pings and systemd restarts us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.readiness import Readiness, short_error
from guard_proxy.proxy.sdnotify import notify

logger = logging.getLogger("guard_proxy.proxy")

__all__ = [
    "FACTS_FIELD",
    "REFRESH",
    "StatusFacts",
    "SystemdReporter",
    "status_facts",
    "summary",
    "watchdog_interval",
]

SEP = " · "
REFRESH = 10.0
"""Seconds between two ``STATUS=`` lines when nothing changes (the counters move on)."""
TICK = 1.0
"""Seconds between two looks at the state (a cache backend change wakes the loop at once)."""
UPSTREAM_EVERY = 5.0
"""Seconds between two upstream probes of the reporter (``/ready`` may probe more often)."""
FACTS_FIELD = "X_GUARD_PROXY_STATUS"
"""The notify field a worker sends its :class:`StatusFacts` in (to its supervisor only)."""
WORKER_ENV = "GUARD_PROXY_WORKER"


@dataclass(frozen=True, slots=True)
class StatusFacts:
    """The parts of the one-line summary: ``head`` (``ready``, ``DEGRADED``, ``DRAINING``),
    the cache and upstream parts, and the request and block counts."""

    head: str
    cache: str
    upstream: str
    requests: int
    blocked: int

    def line(self) -> str:
        """The summary line these facts make."""
        counts = f"{self.requests:,} req, {self.blocked:,} blocked"
        return SEP.join((self.head, self.cache, self.upstream, counts))

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> StatusFacts | None:
        """The facts in ``text``, or None when it is not what :meth:`to_json` writes."""
        try:
            doc = orjson.loads(text)
            facts = cls(**doc)
        except (ValueError, TypeError):
            return None
        fields = (facts.head, facts.cache, facts.upstream, facts.requests, facts.blocked)
        types = (str, str, str, int, int)
        if not all(type(v) is t for v, t in zip(fields, types, strict=True)):
            return None
        return facts


def summary(readiness: Readiness, metrics: Metrics, upstream_ok: bool | None) -> str:
    """The one-line state of the instance (see the module docstring)."""
    return status_facts(readiness, metrics, upstream_ok).line()


def status_facts(readiness: Readiness, metrics: Metrics, upstream_ok: bool | None) -> StatusFacts:
    """The instance's :class:`StatusFacts` now."""
    cache = readiness.cache
    active = str(cache.active_backend or "none")
    fell_back = bool(cache.wants_redis) and active != "redis"
    if readiness.draining:
        head = "DRAINING"
    elif fell_back or upstream_ok is False:
        head = "DEGRADED"
    else:
        head = "ready"
    if active == "none":
        cache_part = "cache off"
    elif active == "redis":
        cache_part = f"cache redis {cache.redis_endpoint}"
        if cache.last_ping_ms is not None:
            cache_part += f" ({cache.last_ping_ms:.1f} ms)"
    elif fell_back:
        cache_part = "cache memory"
        if cache.last_failover_at:
            stamp = time.strftime("%H:%M:%S", time.gmtime(cache.last_failover_at))
            cache_part += f" since {stamp} UTC"
        cache_part += f" ({cache.redis_endpoint} {short_error(cache.last_error)})"
    else:
        cache_part = "cache memory"
    upstream = {True: "upstream ok", False: "upstream DOWN", None: "upstream unknown"}
    return StatusFacts(
        head, cache_part, upstream[upstream_ok], metrics.request_count, metrics.blocked
    )


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between two ``WATCHDOG=1`` (half of ``$WATCHDOG_USEC``), or None when not asked.

    ``$WATCHDOG_PID``, when set, must be our pid (the variables may be inherited by a child).
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000


class SystemdReporter:
    """``STATUS=`` and ``WATCHDOG=1`` to ``$NOTIFY_SOCKET``; start after ``READY=1``.

    **Parameters:**

    * **readiness** - the instance's :class:`Readiness` (upstream probe, cache, draining).
    * **metrics** - the request and block counters.
    * **environ** - the environment (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``, ``WATCHDOG_PID``).
    """

    def __init__(
        self,
        readiness: Readiness,
        metrics: Metrics,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.readiness = readiness
        self.metrics = metrics
        self.env = dict(os.environ if environ is None else environ)
        self.enabled = bool(self.env.get("NOTIFY_SOCKET"))
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watchdog_task: asyncio.Task[None] | None = None
        self._last_state: tuple[Any, ...] | None = None
        self._last_sent = 0.0

    def start_watchdog(self) -> None:
        """Ping from this event loop every half ``WATCHDOG_USEC`` (call as early as possible)."""
        interval = watchdog_interval(self.env)
        if self.enabled and interval is not None and self._watchdog_task is None:
            # Runs until the loop ends: systemd may keep watching while we drain.
            self._watchdog_task = asyncio.create_task(self._watchdog(interval), name="watchdog")

    def start(self) -> None:
        """Send the first ``STATUS=`` now and keep it current."""
        if not self.enabled:
            return
        self.readiness.cache.listeners.append(self._wake.set)
        self._tasks.append(asyncio.create_task(self._status_loop(), name="sd-status"))

    async def stop(self) -> None:
        """Send the draining line and stop the STATUS loop (the caller sends ``STOPPING=1``)."""
        if not self.enabled:
            return
        self._send(self.readiness.last_upstream)
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _send(self, upstream_ok: bool | None) -> None:
        facts = status_facts(self.readiness, self.metrics, upstream_ok)
        message = f"STATUS={facts.line()}"
        if self.env.get(WORKER_ENV):  # our supervisor merges the workers from the data
            message += f"\n{FACTS_FIELD}={facts.to_json()}"
        notify(message, self.env)
        self._last_sent = time.monotonic()

    def _state(self, upstream_ok: bool | None) -> tuple[Any, ...]:
        cache = self.readiness.cache
        return (
            self.readiness.draining,
            cache.active_backend,
            cache.breaker.state,
            cache.redis_endpoint,
            upstream_ok,
        )

    async def _status_loop(self) -> None:
        probed = -UPSTREAM_EVERY
        while True:
            self._wake.clear()
            try:
                now = time.monotonic()
                if now - probed >= UPSTREAM_EVERY or self.readiness.last_upstream is None:
                    await self.readiness.upstream_reachable()
                    probed = time.monotonic()
                upstream_ok = self.readiness.last_upstream
                state = self._state(upstream_ok)
                if state != self._last_state or time.monotonic() - self._last_sent >= REFRESH:
                    self._last_state = state
                    self._send(upstream_ok)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the reporter die; the next tick tries again
                logger.debug("sd_notify: STATUS update failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)

    async def _watchdog(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1", self.env)
            await asyncio.sleep(interval)
