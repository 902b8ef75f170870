"""Pure-ASGI access control: IP allow-list, trusted X-Forwarded-For, body limit, admin token.

Checked before any route runs, in this order:

1. The client address: the socket peer, or, only when the peer is one of
   ``access.trusted_proxies``, the right-most ``X-Forwarded-For`` entry that is not itself a
   trusted proxy. Not in ``access.allow`` -> 403.
2. Admin routes (``POST /cache/clear``; ``admin`` in the route table): no token configured
   -> 403; a missing or wrong ``Authorization: Bearer`` token -> 401 (compared in constant
   time).
3. The body limit (``server.max_body_bytes``): a larger ``Content-Length`` -> 413 at once;
   a chunked body is counted as it is read and answered 413 when it crosses the limit.
   Blob uploads (``/api/blobs/``; ``stream_request`` in the route table) are streamed to
   Ollama, never buffered, and are exempt.

Which paths are admin routes and which are streamed uploads comes from
:mod:`guard_proxy.proxy.routes`.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Collection, Iterable

from guard_proxy.config import AccessSettings
from guard_proxy.proxy.asgi import ASGIApp, Message, Receive, Scope, Send
from guard_proxy.proxy.errors import send_error
from guard_proxy.proxy.routes import admin_paths, streamed_upload_prefixes
from guard_proxy.proxy.state import SCOPE_KEY, RequestInfo

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_DECISION_CACHE_SIZE = 4096


class BodyTooLarge(Exception):
    """The request body crossed ``server.max_body_bytes`` while being read."""


def _networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _address(text: str) -> Address | None:
    try:
        addr = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _within(addr: Address, networks: tuple[Network, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


class AccessMiddleware:
    """See the module docstring. Non-HTTP scopes pass through untouched.

    **Parameters:**

    * **app** - the ASGI app to protect.
    * **settings** - ``access`` settings (allow, trusted_proxies, admin_token).
    * **max_body_bytes** - the request body limit.
    * **admin** - the paths that need the admin token (the route table's when not given).
    * **uploads** - path prefixes exempt from the body limit, as their body is streamed
      upstream (the route table's when not given).
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: AccessSettings,
        max_body_bytes: int,
        *,
        admin: Collection[str] | None = None,
        uploads: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.admin_paths = frozenset(admin if admin is not None else admin_paths())
        self.uploads = tuple(uploads if uploads is not None else streamed_upload_prefixes())
        self.allow = _networks(settings.allow)
        self.trusted = _networks(settings.trusted_proxies)
        self.admin_token = settings.admin_token.encode()
        self.max_body = max_body_bytes
        self._peer_trusted: dict[str, bool] = {}
        self._allowed: dict[str, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        peer_ip = peer[0] if peer else ""
        client = peer_ip
        if self.trusted and peer_ip and self._is_trusted(peer_ip):
            client = self._forwarded_client(scope, peer_ip)
        info = RequestInfo(client)
        scope[SCOPE_KEY] = info
        path: str = scope["path"]
        if not self._is_allowed(client):
            info.route = "denied"
            await send_error(
                send, path, 403, "forbidden: client address not allowed", code="forbidden"
            )
            return
        if path in self.admin_paths and not await self._admin_ok(scope, send, info):
            return
        if path.startswith(self.uploads):
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            info.route = "too_large"
            await _too_large(send, path, self.max_body)
            return
        responder = _LimitedBody(self.app, self.max_body)
        await responder(scope, receive, send)

    # ------------------------------------------------------------------ addresses

    def _is_trusted(self, ip: str) -> bool:
        trusted = self._peer_trusted.get(ip)
        if trusted is None:
            addr = _address(ip)
            trusted = addr is not None and _within(addr, self.trusted)
            if len(self._peer_trusted) >= _DECISION_CACHE_SIZE:
                self._peer_trusted.clear()
            self._peer_trusted[ip] = trusted
        return trusted

    def _forwarded_client(self, scope: Scope, peer_ip: str) -> str:
        values = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
        if not values:
            return peer_ip
        hops = [h.strip() for h in b",".join(values).decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            addr = _address(hop)
            if addr is None:
                return hop  # not an address: denied by the allow-list check
            if not _within(addr, self.trusted):
                return str(addr)
        return str(_address(hops[0])) if hops else peer_ip

    def _is_allowed(self, ip: str) -> bool:
        allowed = self._allowed.get(ip)
        if allowed is None:
            addr = _address(ip) if ip else None
            allowed = addr is not None and _within(addr, self.allow)
            if len(self._allowed) >= _DECISION_CACHE_SIZE:
                self._allowed.clear()
            self._allowed[ip] = allowed
        return allowed

    # ------------------------------------------------------------------ admin token

    async def _admin_ok(self, scope: Scope, send: Send, info: RequestInfo) -> bool:
        path: str = scope["path"]
        info.route = path
        if not self.admin_token:
            await send_error(
                send,
                path,
                403,
                "admin routes are disabled: no admin token is configured "
                "(access.admin_token, GUARD_PROXY_ADMIN_TOKEN or GUARD_PROXY_ADMIN_TOKEN_FILE)",
                code="admin_disabled",
            )
            return False
        provided = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    provided = token.strip()
                break
        if not provided or not hmac.compare_digest(provided, self.admin_token):
            await send_error(
                send,
                path,
                401,
                "admin token missing or wrong (Authorization: Bearer <token>)",
                code="unauthorized",
                headers=[(b"www-authenticate", b'Bearer realm="guard-proxy"')],
            )
            return False
        return True


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, path: str, limit: int) -> None:
    await send_error(
        send,
        path,
        413,
        f"request body larger than {limit} bytes (server.max_body_bytes)",
        code="request_too_large",
        headers=[(b"connection", b"close")],
    )


class _LimitedBody:
    """Count body bytes as the app reads them; answer 413 when they cross the limit."""

    __slots__ = ("app", "limit", "receive", "received", "started")

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.received = 0
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receive = receive

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, self._receive, send_wrapper)
        except BodyTooLarge:
            info = scope.get(SCOPE_KEY)
            if info is not None:
                info.route = info.route or "too_large"
            if not self.started:
                await _too_large(send, scope["path"], self.limit)

    async def _receive(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise BodyTooLarge
        return message
