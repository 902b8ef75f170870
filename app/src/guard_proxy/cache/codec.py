"""How values become the bytes the cache stores, and back: the :class:`Codec` protocol.

The cache stores and passes on bytes; what they mean belongs to its caller. A caller hands its
codec to :meth:`GuardCache.get_or_compute <guard_proxy.cache.GuardCache.get_or_compute>` (the
proxy's :class:`~guard_proxy.proxy.verdicts.VerdictService` hands the verdict codec). The
cache needs two things of a codec: ``encode`` (which may raise ``TypeError``: the value is then
returned but not stored) and ``decode``, which answers None for bytes that are not a value
(the cache then treats them as a miss and overwrites them). Decoding also gives every caller
its own object: concurrent callers that shared one computation each decode the stored bytes.

:data:`JSON_OBJECTS` (orjson, JSON objects only) is the codec of the plain
``get``/``set``/``get_or_compute`` calls.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import orjson

__all__ = ["JSON_OBJECTS", "Codec", "JsonObject", "JsonObjectCodec"]

T = TypeVar("T")

JsonObject = dict[str, object]
"""A decoded JSON object."""


class Codec(Protocol[T]):
    """Turns a ``T`` into bytes and back."""

    def encode(self, value: T, /) -> bytes:
        """The bytes to store; raises ``TypeError`` (or ``ValueError``) when it cannot."""
        ...

    def decode(self, raw: bytes, /) -> T | None:
        """The value in ``raw``, a new object on every call; None when ``raw`` holds none."""
        ...


class JsonObjectCodec:
    """JSON objects (dicts) with orjson; any other JSON, or no JSON, decodes to None."""

    def encode(self, value: JsonObject, /) -> bytes:
        return orjson.dumps(value)  # orjson.JSONEncodeError is a TypeError

    def decode(self, raw: bytes, /) -> JsonObject | None:
        try:
            value: object = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


JSON_OBJECTS = JsonObjectCodec()
