"""The one HTTP client that talks to Ollama: a tuned ``httpx.AsyncClient`` with a keep-alive pool.

Connect timeouts are short; streams have no read timeout; non-streamed calls time out after
``ollama.timeout``. httpx errors are translated here to :class:`UpstreamUnavailable` (the
upstream could not be reached: 502) and :class:`UpstreamTimeout` (no answer in time: 504).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping

import httpx

from guard_proxy.config import OllamaSettings
from guard_proxy.exceptions import UpstreamError

Headers = list[tuple[bytes, bytes]]

# httpcore scans every pooled connection on each request and response (a poll() per idle
# connection, plus a quadratic idle count): with 32 concurrent requests on one pool that scan
# costs more than the request. Requests are spread round-robin over small pools instead.
POOL_SHARDS = 8
# Parsed upstream URLs by (path, query): the hot routes have a handful.
_URL_CACHE_SIZE = 1024

# Request headers that describe the hop between client and proxy, not the request.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_DROP_REQUEST = _HOP_BY_HOP | {b"host", b"content-length", b"accept-encoding", b"expect"}
_DROP_RESPONSE = _HOP_BY_HOP | {b"date", b"server"}
_DROP_RESPONSE_REWRITTEN = _DROP_RESPONSE | {b"content-length", b"content-encoding"}


class UpstreamUnavailable(UpstreamError):
    """Ollama could not be reached or broke the connection before answering (502)."""


class UpstreamTimeout(UpstreamError):
    """Ollama did not answer within ``ollama.timeout`` (504)."""


def forward_headers(raw: Iterable[tuple[bytes, bytes]], *, identity: bool) -> Headers:
    """The client's request headers that go upstream.

    ``identity`` asks Ollama for an uncompressed body (guarded routes read it); otherwise the
    client's own ``accept-encoding`` is kept and the body is relayed as the bytes received.
    """
    out: Headers = []
    encoding = b"identity"
    for name, value in raw:
        if name in _DROP_REQUEST:
            if name == b"accept-encoding" and not identity:
                encoding = value
            continue
        out.append((name, value))
    out.append((b"accept-encoding", encoding))
    return out


def response_headers(response: httpx.Response, *, rewritten: bool = False) -> Headers:
    """Ollama's response headers that go back to the client.

    ``rewritten``: the proxy changes the body, so length and encoding are its own.
    """
    drop = _DROP_RESPONSE_REWRITTEN if rewritten else _DROP_RESPONSE
    return [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in drop]


class Upstream:
    """The Ollama client. One per process; :meth:`aclose` at shutdown.

    Requests go straight to ``httpx.AsyncHTTPTransport`` pools (HTTP/1.1 keep-alive; see
    ``POOL_SHARDS``): a proxy wants none of the client layer's cookie jar (shared across
    all users), redirect following or auth, and skipping it keeps the hot path short.

    **Parameters:**

    * **settings** - ``ollama`` settings: ``url``, ``connect_timeout``, ``timeout``.
    * **transport** - an httpx transport for tests; the default pools HTTP/1.1 connections.
    """

    def __init__(
        self,
        settings: OllamaSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = settings.url.rstrip("/")
        self._base = httpx.URL(self.url)
        self._prefix = self._base.raw_path.rstrip(b"/")
        connect = settings.connect_timeout
        self.stream_timeout = {"connect": connect, "read": None, "write": None, "pool": None}
        self.call_timeout = {
            "connect": connect,
            "read": settings.timeout,
            "write": settings.timeout,
            "pool": None,
        }
        probe = min(connect, 2.0)
        self._probe_timeout = {"connect": probe, "read": 2.0, "write": 2.0, "pool": 2.0}
        if transport is not None:
            self._shards: list[httpx.AsyncBaseTransport] = [transport]
        else:
            limits = httpx.Limits(
                max_connections=None, max_keepalive_connections=16, keepalive_expiry=60.0
            )
            self._shards = [
                httpx.AsyncHTTPTransport(
                    limits=limits, http1=True, http2=False, retries=0, trust_env=False
                )
                for _ in range(POOL_SHARDS)
            ]
        self._turn = 0
        self._urls: dict[tuple[str, bytes], httpx.URL] = {}

    def _request(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: Headers,
        content: bytes | AsyncIterable[bytes] | None,
        timeout: Mapping[str, float | None],
    ) -> httpx.Request:
        url = self._urls.get((path, query))
        if url is None:
            raw_path = self._prefix + path.encode("latin-1")
            if query:
                raw_path += b"?" + query
            url = self._base.copy_with(raw_path=raw_path)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[(path, query)] = url
        return httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": timeout}
        )

    async def open(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: Headers,
        content: bytes | AsyncIterable[bytes] | None,
        *,
        streamed: bool,
    ) -> httpx.Response:
        """Send a request and return the response with its body unread (caller closes it).

        ``streamed`` selects the timeout: no read timeout for streams.
        """
        timeout = self.stream_timeout if streamed else self.call_timeout
        request = self._request(method, path, query, headers, content, timeout)
        self._turn = turn = (self._turn + 1) % len(self._shards)
        try:
            response = await self._shards[turn].handle_async_request(request)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise UpstreamUnavailable(
                    f"cannot connect to Ollama at {self.url}: timeout"
                ) from exc
            raise UpstreamTimeout(f"Ollama at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"cannot reach Ollama at {self.url}: {type(exc).__name__}"
            ) from exc
        response.request = request
        return response

    async def reachable(self) -> bool:
        """Whether ``GET /`` answers (any status below 500) within a short timeout."""
        request = self._request("GET", "/", b"", [], None, self._probe_timeout)
        try:
            response = await self._shards[0].handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def aclose(self) -> None:
        """Close the pools."""
        for shard in self._shards:
            await shard.aclose()
