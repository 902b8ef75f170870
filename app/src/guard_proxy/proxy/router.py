"""A pure-ASGI router: exact paths by dict lookup, a few ``prefix/{rest}`` routes, lifespan.

A path that matches no route answers 404; a known path with another method answers 405 with
``Allow``; both in the path's own error format. A route that allows ``GET`` also allows
``HEAD``. The lifespan runs ``startup`` and ``shutdown`` coroutines; a failed startup is
reported to the server (which then exits) with the exception's type and message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from guard_proxy.proxy.asgi import ASGIApp, Receive, Scope, Send
from guard_proxy.proxy.errors import send_error

Hook = Callable[[], Awaitable[None]]


class _Methods:
    __slots__ = ("allow", "by_method")

    def __init__(self) -> None:
        self.by_method: dict[str, ASGIApp] = {}
        self.allow = b""


class Router:
    """Dispatch HTTP requests to ASGI endpoints by path and method.

    **Parameters:**

    * **startup**, **shutdown** - lifespan hooks.
    """

    def __init__(self, *, startup: Hook, shutdown: Hook) -> None:
        self._startup = startup
        self._shutdown = shutdown
        self._exact: dict[str, _Methods] = {}
        # (prefix, methods, whole_rest): whole_rest lets the rest contain "/" ({x:path}).
        self._prefixed: list[tuple[str, _Methods, bool]] = []

    def add(self, path: str, endpoint: ASGIApp, methods: Iterable[str]) -> None:
        """Route ``path`` (``/a/b``, ``/a/{x}`` or ``/a/{x:path}``) to ``endpoint``."""
        if "{" in path:
            prefix, _, param = path.partition("{")
            whole = param.endswith(":path}")
            entry = next((m for p, m, w in self._prefixed if p == prefix and w == whole), None)
            if entry is None:
                entry = _Methods()
                self._prefixed.append((prefix, entry, whole))
        else:
            entry = self._exact.setdefault(path, _Methods())
        for method in methods:
            entry.by_method[method] = endpoint
            if method == "GET":
                entry.by_method.setdefault("HEAD", endpoint)
        entry.allow = ", ".join(sorted(entry.by_method)).encode()

    def _match(self, path: str) -> _Methods | None:
        entry = self._exact.get(path)
        if entry is not None:
            return entry
        for prefix, methods, whole in self._prefixed:
            if path.startswith(prefix):
                rest = path[len(prefix) :]
                if rest and (whole or "/" not in rest):
                    return methods
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            entry = self._match(path)
            if entry is None:
                await send_error(send, path, 404, "not found", code="not_found")
                return
            endpoint = entry.by_method.get(scope["method"])
            if endpoint is None:
                await send_error(
                    send,
                    path,
                    405,
                    "method not allowed",
                    code="method_not_allowed",
                    headers=[(b"allow", entry.allow)],
                )
                return
            await endpoint(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._startup()
                except Exception as exc:
                    await send(
                        {
                            "type": "lifespan.startup.failed",
                            "message": f"{type(exc).__name__}: {exc}",
                        }
                    )
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return
