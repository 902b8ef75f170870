"""RedisSupervisor alone, over a fake shared backend: the breaker, failover and recovery, the
prober and the sweeper, scrubbing, warn-once. No redis-server: the fake fails on demand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from guard_proxy.cache.backends.base import RedisMemoryInfo, SharedBackend
from guard_proxy.cache.counters import CacheCounters
from guard_proxy.cache.supervisor import SKIP, RedisSupervisor, Skip
from guard_proxy.config.settings import RedisSettings
from guard_proxy.exceptions import AuthFailed, CacheBackendError, CommandRejected, PoolTimeout

from .helpers import eventually

SECRET = "s3cret-pw"


class FakeRedis(SharedBackend):
    """Answers PING with 1 ms, or raises ``fail`` from every call while it is set."""

    name = "fake"

    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.resets = 0
        self.closed = False

    @property
    def address(self) -> str:
        return "fake:6379/0"

    @property
    def endpoint(self) -> str:
        return "fake:6379"

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    async def get(self, key: str) -> bytes | None:
        self._check()
        return None

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        self._check()

    async def delete(self, key: str) -> bool:
        self._check()
        return False

    async def exists(self, key: str) -> bool:
        self._check()
        return False

    async def clear(self, prefix: str) -> int:
        self._check()
        return 0

    async def ping(self) -> float:
        self._check()
        return 0.001

    async def aclose(self) -> None:
        self.closed = True

    async def get_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        self._check()
        return None, None

    async def reset(self) -> None:
        self.resets += 1

    async def info(self) -> RedisMemoryInfo:
        self._check()
        return {"used_memory": 1, "maxmemory": 0, "maxmemory_policy": "noeviction"}

    async def count_keys(self, prefix: str) -> tuple[int, bool]:
        self._check()
        return 0, True


def supervisor(
    fake: FakeRedis | None = None, **settings: object
) -> tuple[RedisSupervisor, FakeRedis, CacheCounters]:
    fake = fake or FakeRedis()
    counters = CacheCounters()
    fields: dict[str, object] = {"password": SECRET, "probe_interval": 3600.0, **settings}
    sup = RedisSupervisor(
        RedisSettings(**fields),  # type: ignore[arg-type]  # test settings
        counters,
        wanted=True,
        connect=lambda _settings: fake,
    )
    return sup, fake, counters


async def test_a_call_is_skipped_until_connected_and_served_after() -> None:
    sup, _, _ = supervisor()
    assert await sup.call(lambda r: r.ping()) is SKIP
    assert not sup.serving
    assert sup.redis_address == "localhost:6379/0"  # wanted, not connected: the settings
    assert sup.redis_endpoint == "localhost:6379"
    await sup.connect()
    try:
        assert sup.serving
        assert await sup.call(lambda r: r.ping()) == 0.001
        assert sup.redis_address == "fake:6379/0"
        assert sup.redis_endpoint == "fake:6379"
        assert sup.last_ping_ms == 1.0
    finally:
        await sup.aclose()
    assert sup.redis is None and sup.closing


async def test_not_wanted_names_no_redis() -> None:
    sup = RedisSupervisor(RedisSettings(), CacheCounters(), wanted=False)
    assert sup.redis_address is None and sup.redis_endpoint is None


async def test_first_failure_fails_over_once_and_scrubs_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    sup, fake, counters = supervisor()
    await sup.connect()
    changes: list[bool] = []
    sup.listeners.append(lambda: changes.append(sup.serving))
    fake.fail = CacheBackendError(f"ConnectionError: refused (password {SECRET})")
    for _ in range(3):
        assert isinstance(await sup.call(lambda r: r.get("k")), Skip)
    await sup.aclose()
    assert counters.errors == 1  # the breaker opened: the other two never reached Redis
    assert counters.failovers == 1 and counters.last_failover_at is not None
    assert sup.breaker.is_open and changes == [False]
    assert sup.last_error == "ConnectionError: refused (password ***)"
    assert sup.last_ping_ms is None
    failed = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failed == [
        "cache: redis at fake:6379/0 failed (ConnectionError: refused (password ***)); "
        "serving from memory, probing every 3600s"
    ]
    assert SECRET not in caplog.text


async def test_the_breaker_threshold_counts_consecutive_failures() -> None:
    sup, fake, counters = supervisor(breaker_threshold=3)
    await sup.connect()
    fake.fail = CacheBackendError("TimeoutError")
    await sup.call(lambda r: r.get("k"))
    await sup.call(lambda r: r.get("k"))
    fake.fail = None
    await sup.call(lambda r: r.get("k"))  # a success ends the streak
    fake.fail = CacheBackendError("TimeoutError")
    await sup.call(lambda r: r.get("k"))
    await sup.call(lambda r: r.get("k"))
    assert sup.breaker.is_closed and counters.failovers == 0
    await sup.call(lambda r: r.get("k"))
    assert sup.breaker.is_open and counters.failovers == 1
    await sup.aclose()


async def test_pool_timeouts_and_rejections_do_not_open_the_breaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    sup, fake, counters = supervisor()
    await sup.connect()
    fake.fail = PoolTimeout("no free Redis connection")
    assert await sup.call(lambda r: r.get("k")) is SKIP
    fake.fail = CommandRejected("OutOfMemoryError: OOM command not allowed")
    for _ in range(3):
        assert await sup.call(lambda r: r.set("k", b"v", 1)) is SKIP
    fake.fail = RuntimeError("a bug")
    assert await sup.call(lambda r: r.get("k")) is SKIP
    await sup.aclose()
    assert sup.breaker.is_closed
    assert (counters.pool_timeouts, counters.errors, counters.failovers) == (1, 4, 0)
    assert sup.last_error == "RuntimeError: a bug"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "cache: redis rejected a command (OutOfMemoryError: OOM command not allowed)",
        "cache: unexpected error (RuntimeError: a bug)",
    ]


async def test_probe_recovers_and_logs_how_long_redis_was_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    sup, fake, counters = supervisor()
    fake.fail = CacheBackendError("ConnectionError: refused")
    await sup.connect()  # unavailable at start-up
    assert sup.breaker.is_open and counters.failovers == 1
    assert "is unavailable at start-up" in caplog.text
    fake.fail = CacheBackendError("ConnectionError: still refused")
    assert await sup.probe() is False
    assert sup.last_error == "ConnectionError: still refused"
    fake.fail = None
    assert await sup.probe() is True
    assert sup.serving and sup.breaker.is_closed
    await sup.aclose()
    assert fake.resets == 2  # old connections dropped before every probe of an open breaker
    assert counters.recoveries == 1 and counters.last_recovery_at is not None
    assert sup.last_ping_ms == 1.0
    assert "cache: redis at fake:6379/0 answers again after " in caplog.text
    assert "; serving from redis" in caplog.text


async def test_authentication_failure_says_which_user(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    sup, fake, _ = supervisor(username="proxy")
    fake.fail = AuthFailed(f"AuthenticationError: invalid username-password pair {SECRET}")
    await sup.connect()
    await sup.aclose()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "cache: redis authentication failed at fake:6379/0 (user 'proxy'): AuthenticationError: "
        "invalid username-password pair ***; serving from memory, probing every 3600s"
    ]


async def test_a_client_redis_py_refuses_means_memory_and_no_prober(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")

    def refuse(settings: RedisSettings) -> SharedBackend:
        raise ValueError(f"bad url with {SECRET}")

    sup = RedisSupervisor(
        RedisSettings(password=SECRET), CacheCounters(), wanted=True, connect=refuse
    )
    await sup.connect()
    assert sup.redis is None and sup._tasks == []
    assert sup.last_error == "ValueError: bad url with ***"
    assert "cache: cannot build the redis client (ValueError: bad url with ***)" in caplog.text
    await sup.aclose()


async def test_the_prober_closes_the_breaker_in_the_background() -> None:
    sup, fake, _ = supervisor(probe_interval=0.01)
    fake.fail = CacheBackendError("ConnectionError: refused")
    await sup.connect()
    assert not sup.serving
    fake.fail = None
    await eventually(lambda: sup.serving)
    await sup.aclose()
    assert fake.closed


async def test_the_sweeper_runs_and_survives_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    sup, _, _ = supervisor()
    calls = 0

    async def sweep() -> int:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("sweep bug")
        return 0

    sup.start_sweeper(sweep, 0.01)
    tasks = list(sup._tasks)
    await eventually(lambda: calls > 5)
    await sup.aclose()
    assert all(t.done() for t in tasks)
    warned = [r for r in caplog.records if "sweep failed" in r.getMessage()]
    assert len(warned) == 1  # warned once, not on every failure


async def test_a_failing_listener_does_not_break_a_failover() -> None:
    sup, fake, counters = supervisor()
    await sup.connect()

    def broken() -> None:
        raise RuntimeError("listener bug")

    seen: list[int] = []
    sup.listeners.extend([broken, lambda: seen.append(1)])
    fake.fail = CacheBackendError("ConnectionError: reset")
    assert await sup.call(lambda r: r.get("k")) is SKIP
    await sup.aclose()
    assert counters.failovers == 1 and seen == [1]


async def test_warn_once_resets_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="guard_proxy.cache")
    sup, fake, _ = supervisor()
    await sup.connect()
    warn: Callable[[], None] = lambda: sup.warn_once("kind", f"cache: odd ({SECRET})")  # noqa: E731
    warn()
    warn()
    fake.fail = CacheBackendError("ConnectionError: reset")
    await sup.call(lambda r: r.get("k"))
    fake.fail = None
    assert await sup.probe()
    warn()
    await sup.aclose()
    odd = [r.getMessage() for r in caplog.records if "odd" in r.getMessage()]
    assert odd == ["cache: odd (***)"] * 2


async def test_aclose_cancels_a_loop_stuck_in_a_call() -> None:
    sup, _, _ = supervisor()
    started = asyncio.Event()

    async def stuck() -> int:
        started.set()
        await asyncio.sleep(3600)
        return 0

    sup.start_sweeper(stuck, 0.01)
    await started.wait()
    tasks = list(sup._tasks)
    await asyncio.wait_for(sup.aclose(), 5)
    assert all(t.done() for t in tasks)
