"""Per-request state shared by the middlewares and the route handlers (``scope["guard_proxy"]``)."""

from __future__ import annotations

from collections.abc import MutableMapping
from enum import StrEnum
from typing import Any

from guard_proxy.proxy.streamformat import StreamFormat

SCOPE_KEY = "guard_proxy"


class RequestVerdict(StrEnum):
    """What the guard made of a guarded request: the request log's ``verdict`` field.

    A request cut short afterwards gets ``,client_gone`` or ``,upstream_broken`` appended.
    """

    ALLOWED = "allowed"
    INVALID = "invalid"  # the body was not a valid request (400)
    BLOCKED_INPUT = "blocked_input"
    BLOCKED_OUTPUT = "blocked_output"
    GUARD_FAILED = "guard_failed"  # a scanner failed under fail_mode closed (or unreadable)


class RequestInfo:
    """What the request log and the metrics need to know about one request.

    The access middleware creates it; handlers fill ``route``, ``verdict`` (an
    :class:`RequestVerdict`, maybe with a suffix), ``cache``, and ``stream`` (the
    response's format when it is a stream, decided once before its start is sent); the keys
    layer fills ``key`` with the client key's name. It never holds prompt or answer text.
    """

    __slots__ = ("blocked_by", "cache", "client", "key", "redacted", "route", "stream", "verdict")

    def __init__(self, client: str) -> None:
        self.client = client
        self.route = ""
        self.verdict = ""
        self.cache = ""
        self.blocked_by: list[str] = []
        self.redacted = ""  # kinds and counts masked in the request ("email=2"), never values
        self.stream: StreamFormat | None = None
        self.key = ""  # the client key's name (access.keys), never the key


def request_info(scope: MutableMapping[str, Any]) -> RequestInfo:
    """The request's :class:`RequestInfo`, created on first use."""
    info: RequestInfo | None = scope.get(SCOPE_KEY)
    if info is None:
        client = scope.get("client")
        info = RequestInfo(client[0] if client else "")
        scope[SCOPE_KEY] = info
    return info
