"""The key a request presents: ``Authorization: Bearer <key>`` or the configured header.

:func:`presented_key` returns the key's bytes, or a :class:`Refusal` that says why there is
none. A key in the query string is refused (400) even with a good header: URLs end up in
logs, proxies and browser histories. Messages never contain what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from guard_proxy.proxy.asgi import Scope

__all__ = ["QUERY_NAMES", "Refusal", "presented_key"]

QUERY_NAMES = frozenset(
    {"key", "api_key", "apikey", "api-key", "access_token", "token", "auth", "authorization"}
)
"""Query parameters taken as an attempt to send a key in the URL."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """No usable key: the status (400/401), a message, and the reason (a metric label)."""

    status: int
    message: str
    reason: str


def presented_key(scope: Scope, header: bytes) -> bytes | Refusal:
    """The key in ``scope``'s headers (``header`` lower-case), or why there is none."""
    query: bytes = scope.get("query_string", b"")
    if query and _key_in_query(query):
        return Refusal(
            400,
            "API keys are not accepted in the URL; send 'Authorization: Bearer <key>'",
            "key_in_query",
        )
    authorization: bytes | None = None
    custom: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == header and custom is None:
            custom = value
    if authorization is not None:
        scheme, _, rest = authorization.strip().partition(b" ")
        key = rest.strip()
        if scheme.lower() != b"bearer":
            return Refusal(
                401,
                "malformed Authorization header: expected 'Bearer <key>'",
                "malformed",
            )
        if not key:
            return Refusal(401, "empty API key in the Authorization header", "empty")
        if b" " in key or b"\t" in key:
            return Refusal(
                401,
                "malformed Authorization header: expected 'Bearer <key>'",
                "malformed",
            )
        return key
    if custom is not None:
        key = custom.strip()
        if not key:
            return Refusal(401, f"empty API key in the {header.decode()} header", "empty")
        return key
    return Refusal(
        401,
        f"missing API key: send 'Authorization: Bearer <key>' or '{header.decode()}: <key>'",
        "missing",
    )


def _key_in_query(query: bytes) -> bool:
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return False
    return any(name.lower() in QUERY_NAMES for name, _ in pairs)
