"""Per-request state shared by the middlewares and the route handlers (``scope["guard_proxy"]``)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

SCOPE_KEY = "guard_proxy"


class RequestInfo:
    """What the request log and the metrics need to know about one request.

    The access middleware creates it; handlers fill ``route``, ``verdict`` and ``cache``.
    It never holds prompt or answer text.
    """

    __slots__ = ("blocked_by", "cache", "client", "route", "verdict")

    def __init__(self, client: str) -> None:
        self.client = client
        self.route = ""
        self.verdict = ""
        self.cache = ""
        self.blocked_by: list[str] = []


def request_info(scope: MutableMapping[str, Any]) -> RequestInfo:
    """The request's :class:`RequestInfo`, created on first use."""
    info: RequestInfo | None = scope.get(SCOPE_KEY)
    if info is None:
        client = scope.get("client")
        info = RequestInfo(client[0] if client else "")
        scope[SCOPE_KEY] = info
    return info
