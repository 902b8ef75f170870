"""The limits' Redis backend: the cache's :class:`RedisBackend` plus the two Lua scripts.

Scripts run by ``EVALSHA`` (loaded with ``SCRIPT LOAD`` on the first ``NOSCRIPT``), inside
the backend's bounded call, so their failures are the cache's errors and trip the limits'
own breaker like any other call.
"""

from __future__ import annotations

from typing import Any

from guard_proxy.cache.backends.redis import RedisBackend
from guard_proxy.config.settings import RedisSettings
from guard_proxy.keys.limits import ADMIT, RECORD, Usage

__all__ = ["LimitsBackend"]


class LimitsBackend(RedisBackend):
    """A Redis backend that also runs the limits' scripts."""

    def __init__(self, settings: RedisSettings) -> None:
        super().__init__(settings)
        self.scripts = {
            "admit": self.client.register_script(ADMIT),
            "record": self.client.register_script(RECORD),
        }

    async def run_script(self, name: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        script = self.scripts[name]
        return await self._call(lambda: script(keys=list(keys), args=list(args)))

    async def read_usage(self, keys: tuple[str, str, str, str]) -> Usage:
        """The counters behind ``keys`` (requests, tokens/minute, tokens/day, streams)."""

        async def op() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(keys[0])
                pipe.get(keys[1])
                pipe.get(keys[2])
                pipe.zcard(keys[3])
                replies: list[Any] = await pipe.execute()
            return replies

        rpm, tpm, tpd, streams = await self._call(op)
        return Usage(int(rpm or 0), int(tpm or 0), int(tpd or 0), int(streams or 0))
