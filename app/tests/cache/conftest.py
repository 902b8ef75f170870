"""Fixtures for the cache tests: real redis-server instances and GuardCache builders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from guard_proxy_testing.caches import CacheFactory
from guard_proxy_testing.fixtures import redis_server, redis_server_factory  # noqa: F401

from guard_proxy.cache import GuardCache
from guard_proxy.config.settings import CacheSettings, RedisSettings


@pytest.fixture
async def make_cache() -> AsyncIterator[CacheFactory]:
    """``await make_cache(cache=..., redis=..., start=True)``; every cache is closed afterwards."""
    caches: list[GuardCache] = []

    async def factory(
        *,
        cache: CacheSettings | None = None,
        redis: RedisSettings | None = None,
        start: bool = True,
        **cache_fields: Any,
    ) -> GuardCache:
        settings = cache or CacheSettings(**cache_fields)
        built = GuardCache(settings, redis or RedisSettings(enabled=False))
        caches.append(built)
        if start:
            await built.start()
        return built

    yield factory
    for built in caches:
        await built.aclose()
