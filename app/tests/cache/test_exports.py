"""The public surface of guard_proxy.cache is exactly what the proxy uses."""

from __future__ import annotations

import inspect

import guard_proxy.cache as cache_pkg
from guard_proxy.cache import GuardCache


def test_all() -> None:
    assert sorted(cache_pkg.__all__) == ["GuardCache", "make_key"]
    for name in cache_pkg.__all__:
        assert getattr(cache_pkg, name) is not None


def test_guard_cache_interface() -> None:
    for name in ("start", "aclose", "get", "set", "delete", "exists", "clear",
                 "get_or_compute", "stats", "health"):  # fmt: skip
        assert inspect.iscoroutinefunction(getattr(GuardCache, name)), name
    assert list(inspect.signature(GuardCache.__init__).parameters) == ["self", "cache", "redis"]
    assert list(inspect.signature(GuardCache.set).parameters) == ["self", "key", "value", "ttl"]
    assert list(inspect.signature(GuardCache.key).parameters) == [
        "self",
        "direction",
        "config_hash",
        "text",
    ]
