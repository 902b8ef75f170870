"""The limits' Redis backend: the cache's :class:`RedisBackend` plus the two Lua scripts.

Scripts run by ``EVALSHA`` (loaded with ``SCRIPT LOAD`` on the first ``NOSCRIPT``), inside
the backend's bounded call, so their failures are the cache's errors and trip the limits'
own breaker like any other call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guard_proxy.cache.backends.redis import RedisBackend
from guard_proxy.config.settings import RedisSettings

__all__ = ["ADMIT", "RECORD", "LimitsBackend", "Usage"]


ADMIT = """
-- KEYS: requests, tokens/minute, tokens/day, streams. ARGV: the four limits (0: none),
-- lease id, lease ms. Reply {0, 0}: admitted; {code, wait ms}: refused (see REFUSED).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local tpd, streams = tonumber(ARGV[3]), tonumber(ARGV[4])
local function wait(key)
  local ms = redis.call('PTTL', key)
  if ms < 0 then return 1000 end
  return ms
end
local function spent(key, limit)
  return limit > 0 and tonumber(redis.call('GET', key) or '0') >= limit
end
if spent(KEYS[3], tpd) then return {3, wait(KEYS[3])} end
if spent(KEYS[2], tpm) then return {2, wait(KEYS[2])} end
if streams > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= streams then return {4, 1000} end
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 60000) end
if rpm > 0 and n > rpm then return {1, wait(KEYS[1])} end
if streams > 0 then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), ARGV[5])
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[6]))
end
return {0, 0}
"""

RECORD = """
-- KEYS: tokens/minute, tokens/day, streams. ARGV: tokens, lease id ('' for none).
local n = tonumber(ARGV[1])
if n > 0 then
  redis.call('INCRBY', KEYS[1], n)
  if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], 60000) end
  redis.call('INCRBY', KEYS[2], n)
  if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], 86400000) end
end
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[3], ARGV[2]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Usage:
    """A key's current counts (``guard-proxy keys``); None: unknown."""

    requests_minute: int
    tokens_minute: int
    tokens_day: int
    streams: int


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
