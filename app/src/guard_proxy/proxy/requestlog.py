"""Pure-ASGI request log and request metrics: one JSON line per request on stdout.

Besides each request's route, status and duration it counts the requests in flight and, for
streamed answers (NDJSON or SSE), the time to the first body chunk sent to the client and
the stream's duration.

The line holds route, method, status, duration_ms, client, verdict, cache result and the
client key's name; never prompt or answer text, never headers (they may carry tokens).
"""

from __future__ import annotations

import logging
import time

from guard_proxy.proxy.asgi import ASGIApp, Message, Receive, Scope, Send
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.state import SCOPE_KEY, RequestInfo

logger = logging.getLogger("guard_proxy.access")


class RequestLogMiddleware:
    """Time each HTTP request, count it in :class:`Metrics` and log it (if ``access_log``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, *, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        counted = scope["path"] != "/metrics"  # a scrape would always see itself in flight
        if counted:
            metrics.in_flight += 1
        start = time.perf_counter()
        status = 0
        streamed = False
        first_chunk = 0.0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, streamed, first_chunk
            if message["type"] == "http.response.start":
                status = message["status"]
                started: RequestInfo | None = scope.get(SCOPE_KEY)
                streamed = started is not None and started.stream is not None
            elif streamed and not first_chunk and message.get("body"):
                first_chunk = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status = status or 500
            raise
        finally:
            elapsed = time.perf_counter() - start
            if counted:
                metrics.in_flight -= 1
            info: RequestInfo | None = scope.get(SCOPE_KEY)
            route = (info.route if info else "") or "unmatched"
            method: str = scope["method"]
            metrics.request(route, method, status or 499, elapsed)
            if streamed:
                metrics.stream(route, first_chunk - start if first_chunk else None, elapsed)
            if self.access_log and logger.isEnabledFor(logging.INFO):
                fields = {
                    "route": route,
                    "method": method,
                    "path": scope["path"] if route != "unmatched" else "-",
                    "status": status or 499,
                    "duration_ms": round(elapsed * 1000.0, 3),
                    "client": info.client if info else "",
                }
                if info is not None and info.verdict:
                    fields["verdict"] = info.verdict
                    if info.blocked_by:
                        fields["scanners"] = info.blocked_by
                    if info.redacted:
                        fields["redacted"] = info.redacted
                if info is not None and info.cache:
                    fields["cache"] = info.cache
                if info is not None and info.key:
                    fields["key"] = info.key
                logger.info("request", extra={"fields": fields})
