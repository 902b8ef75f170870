"""Per-key limits shared by every proxy through Redis, counted per process while it is away.

Windows are **fixed** and start with a key's first counted request: requests per minute
(60 s), tokens per minute (60 s) and tokens per day (86 400 s from the first tokens, not the
calendar day). In Redis each is one counter with ``PEXPIRE`` set when it is created, so the
clocks of the proxies never matter; the window's remaining time is ``Retry-After``.
Concurrent streams are a sorted set of leases (id scored by expiry): a request on a
generation route takes one and gives it back when its answer ends; a crashed proxy's leases
lapse after ``access.keys.stream_lease``.

Admission is one Lua script (:data:`ADMIT`), so two proxies racing for the last request of
a window cannot both get it. Tokens are known only when an answer ends, so a request is let
in while the spent tokens are under the budget, and its own tokens may overshoot it.

Redis is reached through a :class:`~guard_proxy.cache.supervisor.RedisSupervisor` of its own
(the cache's breaker and prober pattern): while the breaker is open, or when a call fails,
the limits are counted in this process against ``limit // (access.keys.proxies *
server.workers)`` (at least 1), and the switch back happens when the prober sees Redis
again. Counts made in one mode are not carried to the other. Every switch is logged.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guard_proxy.cache.counters import CacheCounters
from guard_proxy.cache.supervisor import RedisSupervisor, Skip
from guard_proxy.config.settings import KeysSettings, RedisSettings
from guard_proxy.keys.redis_scripts import ADMIT, RECORD, Usage
from guard_proxy.keys.store import Limits

if TYPE_CHECKING:
    from guard_proxy.cache.backends.base import SharedBackend

__all__ = ["ADMIT", "RECORD", "Decision", "KeyLimits", "LocalCounts", "Usage", "redis_keys"]

logger = logging.getLogger("guard_proxy.keys")

MINUTE_MS = 60_000
DAY_MS = 86_400_000

# Refusal codes of the script, and the limit each one names.
REFUSED = {
    1: "requests_per_minute",
    2: "tokens_per_minute",
    3: "tokens_per_day",
    4: "concurrent_streams",
}


def redis_keys(prefix: str, name: str) -> tuple[str, str, str, str]:
    """The Redis keys of ``name``: requests, tokens/minute, tokens/day, streams."""
    base = f"{prefix}{name}:"
    return (base + "rpm", base + "tpm", base + "tpd", base + "streams")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request: admitted (with its lease), or refused by ``limit``."""

    limit: str | None  # None: admitted
    retry_after: int = 0  # whole seconds, >= 1 when refused
    lease: str = ""  # the concurrency lease taken ("" when none)
    shared: bool = True  # counted in Redis (False: in this process)

    @property
    def admitted(self) -> bool:
        return self.limit is None


def _seconds(ms: float) -> int:
    return max(1, math.ceil(ms / 1000))


class _Window:
    __slots__ = ("count", "ends")

    def __init__(self) -> None:
        self.count = 0
        self.ends = 0.0


class LocalCounts:
    """The fallback: the same windows in this process, each limit divided by ``share``."""

    def __init__(self, share: int) -> None:
        self.share = max(1, share)
        self.windows: dict[tuple[str, str], _Window] = {}
        self.leases: dict[str, dict[str, float]] = {}

    def limit(self, value: int) -> int:
        """This process's part of a limit (0 stays no limit)."""
        return max(1, value // self.share) if value else 0

    def _window(self, name: str, kind: str, length: float, now: float) -> _Window:
        window = self.windows.get((name, kind))
        if window is None:
            window = self.windows[(name, kind)] = _Window()
        if now >= window.ends:
            window.count = 0
            window.ends = now + length
        return window

    def admit(self, name: str, limits: Limits, streamed: bool, lease_s: float) -> Decision:
        now = time.monotonic()
        for kind, value in (("tpd", limits.tokens_per_day), ("tpm", limits.tokens_per_minute)):
            limit = self.limit(value)
            window = self.windows.get((name, kind))
            if limit and window is not None and now < window.ends and window.count >= limit:
                label = "tokens_per_day" if kind == "tpd" else "tokens_per_minute"
                return Decision(label, _seconds((window.ends - now) * 1000), shared=False)
        streams = self.limit(limits.concurrent_streams) if streamed else 0
        held = self.leases.setdefault(name, {})
        if streams:
            for lease, until in list(held.items()):
                if until <= now:
                    del held[lease]
            if len(held) >= streams:
                return Decision("concurrent_streams", 1, shared=False)
        window = self._window(name, "rpm", MINUTE_MS / 1000, now)
        window.count += 1
        rpm = self.limit(limits.requests_per_minute)
        if rpm and window.count > rpm:
            return Decision(
                "requests_per_minute", _seconds((window.ends - now) * 1000), shared=False
            )
        lease = ""
        if streams:
            lease = secrets.token_hex(8)
            held[lease] = now + lease_s
        return Decision(None, lease=lease, shared=False)

    def record(self, name: str, tokens: int, lease: str) -> None:
        now = time.monotonic()
        if tokens > 0:
            for kind, length in (("tpm", MINUTE_MS / 1000), ("tpd", DAY_MS / 1000)):
                window = self.windows.get((name, kind))
                if window is None or now >= window.ends:
                    window = self._window(name, kind, length, now)
                window.count += tokens
        if lease:
            self.leases.get(name, {}).pop(lease, None)

    def usage(self, name: str) -> Usage:
        now = time.monotonic()

        def count(kind: str) -> int:
            window = self.windows.get((name, kind))
            return window.count if window is not None and now < window.ends else 0

        held = self.leases.get(name, {})
        return Usage(
            count("rpm"), count("tpm"), count("tpd"), sum(1 for t in held.values() if t > now)
        )


def _limits_backend(settings: RedisSettings) -> SharedBackend:
    from guard_proxy.keys.redis_scripts import LimitsBackend

    return LimitsBackend(settings)


class KeyLimits:
    """Admission and accounting for keys: Redis first, this process's counts as fallback.

    Build, ``await start()``, use, ``await aclose()``. No method raises because of Redis.
    """

    def __init__(
        self, settings: KeysSettings, redis: RedisSettings, *, workers: int, use_redis: bool
    ) -> None:
        self.prefix = settings.prefix
        self.lease_ms = int(settings.stream_lease * 1000)
        self.local = LocalCounts(settings.proxies * workers)
        self.supervisor = RedisSupervisor(
            redis, CacheCounters(), wanted=use_redis, connect=_limits_backend
        )
        self.supervisor.listeners.append(self._switched)
        self.use_redis = use_redis
        self.fallbacks = 0  # decisions made in this process while Redis was wanted
        # The last admission fell back although the breaker is closed: Redis refused the
        # script (an ACL without EVALSHA or the prefix) or one call failed below the threshold.
        self.refused = False

    @property
    def shared(self) -> bool:
        """Whether the limits are counted in Redis right now."""
        return self.supervisor.serving and not self.refused

    async def start(self) -> None:
        if self.use_redis:
            await self.supervisor.connect()

    async def aclose(self) -> None:
        await self.supervisor.aclose()

    def _switched(self) -> None:
        if self.supervisor.serving:
            logger.warning("keys: limits shared through redis again")
        else:
            logger.warning(
                "keys: redis unavailable; limits counted in this process (limit // %d)",
                self.local.share,
            )

    async def admit(self, name: str, limits: Limits, streamed: bool) -> Decision:
        """Count one request of ``name`` and say whether it may go on."""
        streams = limits.concurrent_streams if streamed else 0
        lease = secrets.token_hex(8) if streams else ""
        args = (
            limits.requests_per_minute,
            limits.tokens_per_minute,
            limits.tokens_per_day,
            streams,
            lease,
            self.lease_ms,
        )
        keys = redis_keys(self.prefix, name)
        reply = await self.supervisor.call(lambda b: _run(b, "admit", keys, args))
        if isinstance(reply, Skip):
            if self.use_redis:
                self.fallbacks += 1
                if self.supervisor.serving and not self.refused:
                    self.refused = True
                    logger.error(
                        "keys: redis did not run the limits script (%s); limits counted in "
                        "this process (limit // %d)",
                        self.supervisor.last_error,
                        self.local.share,
                    )
            return self.local.admit(
                name,
                Limits(limits.requests_per_minute, streams, *_tokens(limits)),
                streamed,
                self.lease_ms / 1000,
            )
        if self.refused:
            self.refused = False
            logger.warning("keys: limits shared through redis again")
        code, wait_ms = int(reply[0]), int(reply[1])
        if code:
            return Decision(REFUSED[code], _seconds(wait_ms))
        return Decision(None, lease=lease)

    async def record(self, name: str, decision: Decision, tokens: int) -> None:
        """Add an answer's ``tokens`` to ``name``'s windows and give back its lease."""
        if not decision.shared:
            self.local.record(name, tokens, decision.lease)
            return
        if tokens <= 0 and not decision.lease:
            return
        _, tpm_key, tpd_key, streams_key = redis_keys(self.prefix, name)
        reply = await self.supervisor.call(
            lambda b: _run(b, "record", (tpm_key, tpd_key, streams_key), (tokens, decision.lease))
        )
        if isinstance(reply, Skip):
            # Redis went away during the answer: count the tokens here (the lease lapses).
            self.local.record(name, tokens, "")

    async def usage(self, name: str) -> Usage | None:
        """``name``'s counts where they are kept now (Redis, or this process)."""
        if not self.shared:
            return self.local.usage(name)
        keys = redis_keys(self.prefix, name)
        reply = await self.supervisor.call(lambda b: _read(b, keys))
        return None if isinstance(reply, Skip) else reply


def _tokens(limits: Limits) -> tuple[int, int]:
    return limits.tokens_per_minute, limits.tokens_per_day


async def _run(backend: SharedBackend, script: str, keys: tuple[str, ...], args: Any) -> Any:
    from guard_proxy.keys.redis_scripts import LimitsBackend

    if not isinstance(backend, LimitsBackend):  # pragma: no cover - built by _limits_backend
        raise TypeError("the limits need their own Redis backend")
    return await backend.run_script(script, keys, args)


async def _read(backend: SharedBackend, keys: tuple[str, str, str, str]) -> Usage:
    from guard_proxy.keys.redis_scripts import LimitsBackend

    if not isinstance(backend, LimitsBackend):  # pragma: no cover - built by _limits_backend
        raise TypeError("the limits need their own Redis backend")
    return await backend.read_usage(keys)
