"""Shared by the cache tests: the ``make_cache`` factory's type and the Redis timeouts.

The ``make_cache`` fixture itself lives in ``app/tests/cache/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from guard_proxy.cache import GuardCache

CacheFactory = Callable[..., Awaitable[GuardCache]]

RELAXED = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0}
"""Timeouts for tests that are not about timeouts: a loaded CI host must not fail them."""
FREEZE = {"socket_connect_timeout": 1.0, "socket_timeout": 0.5}
"""Timeouts for tests that freeze Redis: short enough to fail over, long enough for load."""
