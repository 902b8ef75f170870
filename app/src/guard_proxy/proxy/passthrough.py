"""Routes carried unchanged: method, status, headers that matter and body, streamed both ways.

The response body is relayed chunk by chunk as Ollama sends it (no decoding, no buffering),
raced against the client's disconnect. Request bodies are read whole (the access middleware
bounds them), except blob uploads, which stream to Ollama as they arrive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from guard_proxy.exceptions import UpstreamError
from guard_proxy.proxy.asgi import ClientDisconnected, Receive, Scope, Send, read_body
from guard_proxy.proxy.disconnect import run_until_disconnect
from guard_proxy.proxy.errors import send_error
from guard_proxy.proxy.state import RequestInfo, request_info
from guard_proxy.proxy.streamformat import stream_format
from guard_proxy.proxy.upstream import (
    Upstream,
    UpstreamBroken,
    UpstreamResponse,
    UpstreamTimeout,
    forward_headers,
)


async def relay(
    send: Send,
    response: UpstreamResponse,
    head: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send ``response`` to the client as received; the caller closes it."""
    headers = response.headers()
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if not head:
        async for chunk in response.chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def upstream_failed(send: Send, path: str, exc: UpstreamError) -> None:
    """Answer 502 (unreachable) or 504 (timed out) in the endpoint's own format."""
    status = 504 if isinstance(exc, UpstreamTimeout) else 502
    await send_error(send, path, status, str(exc), code="upstream_unavailable")


class Passthrough:
    """An ASGI endpoint that forwards one route to Ollama.

    **Parameters:**

    * **upstream** - the shared :class:`Upstream`.
    * **route** - the route template, for logs and metrics.
    * **streamed** - no read timeout (progress streams, generation).
    * **stream_request** - stream the request body upstream instead of reading it first.
    """

    def __init__(
        self,
        upstream: Upstream,
        route: str,
        *,
        streamed: bool = False,
        stream_request: bool = False,
    ) -> None:
        self.upstream = upstream
        self.route = route
        self.streamed = streamed
        self.stream_request = stream_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = request_info(scope)
        info.route = self.route
        method: str = scope["method"]
        path: str = scope["path"]
        headers = forward_headers(scope["headers"], identity=False)
        content: bytes | AsyncIterator[bytes] | None
        body_done = True
        if self.stream_request:
            content = _body_stream(receive)
            if not _has_body(scope):
                content = None
            else:
                body_done = False
        else:
            try:
                content = await read_body(receive)
            except ClientDisconnected:
                return
            if not content and method in ("GET", "HEAD"):
                content = None
        try:
            if body_done:
                await run_until_disconnect(
                    receive,
                    self._exchange(
                        send, method, path, scope["query_string"], headers, content, info
                    ),
                )
            else:
                # The body is still being read from ``receive``: no concurrent watcher.
                await self._exchange(
                    send, method, path, scope["query_string"], headers, content, info
                )
        except ClientDisconnected:
            return

    async def _exchange(
        self,
        send: Send,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterator[bytes] | None,
        info: RequestInfo,
    ) -> None:
        try:
            response = await self.upstream.open(
                method, path, query, headers, content, streamed=self.streamed
            )
        except UpstreamError as exc:
            await upstream_failed(send, path, exc)
            return
        info.stream = stream_format(response.content_type)
        try:
            await relay(send, response, head=method == "HEAD")
        except UpstreamBroken:
            # Ollama broke the connection mid-body: the status is already sent; end it.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


async def _body_stream(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
