"""Draining: the requests in flight, and how the ones still running at the drain deadline end.

:class:`DrainMiddleware` registers every proxied request (the own endpoints are not counted)
in an :class:`InFlight` registry while it runs; :attr:`InFlight.count` is the number being
answered now. On SIGTERM the server stops accepting connections and lets these requests
finish; when ``server.drain_timeout`` runs out it calls :meth:`InFlight.expire`, which
cancels each one still running and ends it in its route's own format, never with a torn
connection:

* no response started yet (waiting for the body, the verdict or Ollama's first byte):
  503 in the route's error shape (``{"error": "..."}``, or the OpenAI error object on ``/v1``);
* an NDJSON stream: after the last complete line, an ``{"error": ...}`` line (the OpenAI
  error object on ``/v1``), as a guard block ends one (see :mod:`guard_proxy.proxy.framing`);
* an SSE stream: an ``data: {"error": {...}}`` event, then ``data: [DONE]``;
* any other body simply ends (rare: the non-streamed answers are sent in one piece).

Cancelling closes the upstream response in the routes' ``finally``, so Ollama stops
generating. A request that arrives after the deadline (pipelined on an open connection) is
answered 503 at once. Nothing here holds prompt or answer text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from guard_proxy.proxy.asgi import ASGIApp, Message, Receive, Scope, Send
from guard_proxy.proxy.errors import error_body, send_error
from guard_proxy.proxy.state import SCOPE_KEY, RequestInfo
from guard_proxy.proxy.streamformat import StreamFormat

__all__ = ["CUT_MESSAGE", "REFUSED_MESSAGE", "DrainMiddleware", "InFlight"]

logger = logging.getLogger("guard_proxy.proxy")

CUT_MESSAGE = "the proxy is shutting down: server.drain_timeout ran out before the answer ended"
REFUSED_MESSAGE = "the proxy is shutting down; retry the request"
CODE = "shutting_down"


class _Ticket:
    """One request in flight: its task, and how far its response went (seen on ``send``)."""

    __slots__ = ("_scope", "_send", "cut", "finished", "format", "started", "tail", "task")

    def __init__(self, task: asyncio.Task[object], scope: Scope, send: Send) -> None:
        self.task = task
        self._scope = scope
        self._send = send
        self.started = False
        self.finished = False
        self.format: StreamFormat | None = None
        self.tail = b""  # the last bytes sent: does the body end on a line / event boundary?
        self.cut = False

    async def send(self, message: Message) -> None:
        await self._send(message)
        # State changes only after the message went out: a cancelled send sent nothing.
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            info: RequestInfo | None = self._scope.get(SCOPE_KEY)
            self.format = info.stream if info is not None else None
        elif kind == "http.response.body":
            body = message.get("body", b"")
            if body:
                self.tail = body[-2:]
            if not message.get("more_body", False):
                self.finished = True

    def cut_off(self) -> bool:
        """Cancel the request unless its response is complete; returns whether it was cut."""
        if self.finished or self.cut:
            return False
        self.cut = True
        self.task.cancel()
        return True

    async def end(self, path: str) -> None:
        """End the response in the route's own format (see the module docstring)."""
        send = self._send
        if not self.started:
            await send_error(send, path, 503, CUT_MESSAGE, openai_type="api_error", code=CODE)
            return
        fmt = self.format
        if fmt is not None:
            body = error_body(path, CUT_MESSAGE, openai_type="api_error", code=CODE)
            out = b"".join([fmt.boundary_after(self.tail), *fmt.end(body)])
        else:
            out = b""
        await send({"type": "http.response.body", "body": out, "more_body": False})


class InFlight:
    """The proxied requests being answered now.

    :attr:`count` is what a ``guard_proxy_requests_in_flight`` gauge shows; :meth:`idle`
    waits until it is 0; :meth:`expire` ends what still runs at the drain deadline.
    """

    def __init__(self) -> None:
        self._tickets: set[_Ticket] = set()
        self._idle: asyncio.Event | None = None
        self.expired = False
        """Set by :meth:`expire`: from then on every new request is answered 503."""

    @property
    def count(self) -> int:
        """Proxied requests in flight now (the own endpoints are not counted)."""
        return len(self._tickets)

    def _add(self, ticket: _Ticket) -> None:
        self._tickets.add(ticket)

    def _discard(self, ticket: _Ticket) -> None:
        self._tickets.discard(ticket)
        if not self._tickets and self._idle is not None:
            self._idle.set()

    async def idle(self) -> None:
        """Return once no request is in flight."""
        while self._tickets:
            self._idle = asyncio.Event()
            await self._idle.wait()

    def expire(self) -> int:
        """The drain deadline: cancel every request still running, to be ended in its own
        format; returns how many were cut."""
        self.expired = True
        cut = sum(ticket.cut_off() for ticket in list(self._tickets))
        if cut:
            logger.warning(
                "drain timeout: ending the requests still in flight",
                extra={"fields": {"requests": cut}},
            )
        return cut


class DrainMiddleware:
    """Pure-ASGI middleware: register proxied requests in ``inflight``, end them when cut.

    **Parameters:**

    * **app** - the router.
    * **inflight** - the process's :class:`InFlight`.
    * **own_paths** - paths of the proxy's own endpoints, which are not counted or cut.
    """

    def __init__(self, app: ASGIApp, inflight: InFlight, own_paths: Collection[str]) -> None:
        self.app = app
        self.inflight = inflight
        self.own_paths = frozenset(own_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.own_paths:
            await self.app(scope, receive, send)
            return
        inflight = self.inflight
        path: str = scope["path"]
        if inflight.expired:
            await send_error(send, path, 503, REFUSED_MESSAGE, openai_type="api_error", code=CODE)
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a task under a server
            await self.app(scope, receive, send)
            return
        ticket = _Ticket(task, scope, send)
        inflight._add(ticket)
        try:
            await self.app(scope, receive, ticket.send)
        except asyncio.CancelledError:
            if not ticket.cut:
                raise
        finally:
            inflight._discard(ticket)
        if ticket.cut:
            if task.cancelling():
                task.uncancel()  # our cancellation, swallowed or caught above: it is handled
            if not ticket.finished:
                try:
                    await ticket.end(path)
                except Exception:  # e.g. a body with a Content-Length cannot end early
                    logger.debug("drain: could not end a response in its format", exc_info=True)
