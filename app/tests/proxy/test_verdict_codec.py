"""The verdict codec VerdictService hands the cache: Verdict <-> the bytes the cache stores."""

from __future__ import annotations

import pytest
from guard_proxy_testing.guards import TERM, banned_guard

from guard_proxy.cache import GuardCache
from guard_proxy.config.settings import CacheSettings, RedisSettings
from guard_proxy.guard import Direction, Verdict
from guard_proxy.guard.types import Finding
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.verdicts import VERDICTS, VerdictService

BLOCKED = Verdict(False, (Finding("banned_substrings", "banned term"),))


def test_round_trip() -> None:
    raw = VERDICTS.encode(BLOCKED)
    assert raw == b'{"allowed":false,"findings":[["banned_substrings","banned term"]]}'
    assert VERDICTS.decode(raw) == BLOCKED
    assert VERDICTS.decode(VERDICTS.encode(Verdict(True))) == Verdict(True)


def test_reads_the_legacy_form() -> None:
    legacy = (
        b'{"allowed":false,"findings":[{"scanner":"banned_substrings","reason":"banned term"}]}'
    )
    assert VERDICTS.decode(legacy) == BLOCKED


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b"{}", b'{"allowed":"yes"}', b'{"allowed":true,"findings":[1]}']
)
def test_what_is_not_a_verdict_decodes_to_none(raw: bytes) -> None:
    assert VERDICTS.decode(raw) is None


async def test_a_stored_value_that_is_not_a_verdict_is_scanned_again_and_replaced() -> None:
    cache = GuardCache(CacheSettings(backend="memory"), RedisSettings(enabled=False))
    await cache.start()
    try:
        guard = banned_guard()
        service = VerdictService(guard, cache, Metrics(), "closed")
        text = f"say {TERM}"
        key = cache.key("input", guard.config_hash(Direction.INPUT), text)
        await cache.memory.set(key, b'{"allowed":"maybe"}', 60)
        check = await service.check(Direction.INPUT, [text])
        assert (check.allowed, check.cache) == (False, "miss")
        assert VERDICTS.decode(await cache.memory.get(key) or b"") is not None
        assert (await service.check(Direction.INPUT, [text])).cache == "hit"
    finally:
        await cache.aclose()
