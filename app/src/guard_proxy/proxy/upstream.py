"""The one HTTP client that talks to Ollama: an ``aiohttp.ClientSession`` with a keep-alive pool.

Connect timeouts are short; streams have no read timeout; non-streamed calls time out after
``ollama.timeout`` without a byte. Bodies pass through byte for byte (no decompression, no
cookies, no headers the client did not send but ``Host`` and the framing). aiohttp errors are
translated here: :class:`UpstreamUnavailable` (the upstream could not be reached: 502),
:class:`UpstreamTimeout` (no answer in time: 504) and, once the answer has begun,
:class:`UpstreamBroken` (the connection broke mid-body).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from urllib.parse import quote

import aiohttp
from yarl import URL

from guard_proxy.config import OllamaSettings
from guard_proxy.exceptions import UpstreamError

Headers = list[tuple[bytes, bytes]]

# No cap on connections to Ollama: each one serves one client request, generations stream
# for minutes, and a cap would only queue requests behind them (or, since the connect
# timeout also bounds the wait for a pooled connection, fail them). Ollama queues itself
# (OLLAMA_MAX_QUEUE); bound client concurrency in uvicorn if needed.
POOL_LIMIT = 0
# Idle keep-alive connections are dropped after this many seconds, below the 5 s idle timeout
# common to servers (uvicorn, Node), so the proxy never reuses a socket the server is closing.
KEEPALIVE_S = 4.0
# Parsed upstream URLs by (path, query): the hot routes have a handful.
_URL_CACHE_SIZE = 1024
_READ_BUFSIZE = 1 << 16
# Characters a path segment may hold unquoted (RFC 3986 pchar, plus "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

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
# Headers aiohttp would add on its own; the client's own (if any) are forwarded instead.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class UpstreamUnavailable(UpstreamError):
    """Ollama could not be reached or broke the connection before answering (502)."""


class UpstreamTimeout(UpstreamError):
    """Ollama did not answer within ``ollama.timeout`` (504)."""


class UpstreamBroken(UpstreamError):
    """Ollama broke the connection (or fell silent past the timeout) in the middle of a body."""


def forward_headers(raw: Iterable[tuple[bytes, bytes]], *, identity: bool) -> list[tuple[str, str]]:
    """The client's request headers that go upstream.

    ``identity`` asks Ollama for an uncompressed body (guarded routes read it); otherwise the
    client's own ``accept-encoding`` is kept and the body is relayed as the bytes received.
    """
    out: list[tuple[str, str]] = []
    encoding = "identity"
    for name, value in raw:
        if name in _DROP_REQUEST:
            if name == b"accept-encoding" and not identity:
                encoding = value.decode("latin-1")
            continue
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    out.append(("Accept-Encoding", encoding))
    return out


class UpstreamResponse:
    """Ollama's answer with its body unread. The caller reads it once, then :meth:`aclose` s it.

    ``chunks()`` yields the body as it arrives (transfer framing removed, content encoding
    kept); ``read()`` returns all of it. Both raise :class:`UpstreamBroken` if the connection
    breaks mid-body.
    """

    __slots__ = ("_raw", "status")

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw
        self.status = raw.status

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header, or ``""``."""
        return self._raw.headers.get("Content-Type", "")

    def headers(self, *, rewritten: bool = False) -> Headers:
        """The response headers that go back to the client.

        ``rewritten``: the proxy changes the body, so length and encoding are its own.
        """
        drop = _DROP_RESPONSE_REWRITTEN if rewritten else _DROP_RESPONSE
        out: Headers = []
        for name, value in self._raw.raw_headers:
            name = name.lower()
            if name not in drop:
                out.append((name, value))
        return out

    async def read(self) -> bytes:
        """The whole body."""
        try:
            return await self._raw.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _broken(exc) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives (no empty pieces)."""
        content = self._raw.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _broken(exc) from exc

    async def aclose(self) -> None:
        """Give the connection back (or close it, when the body was not read to its end)."""
        self._raw.release()


def _broken(exc: BaseException) -> UpstreamBroken:
    return UpstreamBroken(f"Ollama broke the answer off: {type(exc).__name__}")


class Upstream:
    """The Ollama client. One per process; :meth:`aclose` at shutdown.

    One ``ClientSession`` (created on first use, inside the event loop) over one
    ``TCPConnector``: HTTP/1.1 keep-alive, no cookie jar (it would be shared across all
    users), no redirects, no decompression, no environment proxies.

    **Parameters:**

    * **settings** - ``ollama`` settings: ``url``, ``connect_timeout``, ``timeout``.
    """

    def __init__(self, settings: OllamaSettings) -> None:
        self.url = settings.url.rstrip("/")
        self._base = URL(self.url)
        self._prefix = self._base.raw_path.rstrip("/")
        # ``connect`` bounds name resolution and connecting; ``sock_read`` the wait for each
        # read of a non-streamed answer. Streams have no read timeout.
        connect = settings.connect_timeout
        self.stream_timeout = aiohttp.ClientTimeout(connect=connect, sock_connect=connect)
        self.call_timeout = aiohttp.ClientTimeout(
            connect=connect, sock_connect=connect, sock_read=settings.timeout
        )
        probe = min(connect, 2.0)
        self._probe_timeout = aiohttp.ClientTimeout(total=2.0, connect=probe)
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[tuple[str, bytes], URL] = {}

    def _open_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=POOL_LIMIT,
            keepalive_timeout=KEEPALIVE_S,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS,
            trust_env=False,
            read_bufsize=_READ_BUFSIZE,
            requote_redirect_url=False,
        )
        return self._session

    def _url(self, path: str, query: bytes) -> URL:
        url = self._urls.get((path, query))
        if url is None:
            # ``path`` is decoded (ASGI ``path``); the query string is still encoded.
            url = self._base.with_path(
                quote(self._prefix + path, safe=_PATH_SAFE), encoded=True
            ).with_query(None)
            if query:
                url = URL(str(url) + "?" + query.decode("latin-1"), encoded=True)
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[(path, query)] = url
        return url

    async def open(
        self,
        method: str,
        path: str,
        query: bytes,
        headers: list[tuple[str, str]],
        content: bytes | AsyncIterable[bytes] | None,
        *,
        streamed: bool,
    ) -> UpstreamResponse:
        """Send a request and return the response with its body unread (caller closes it).

        ``streamed`` selects the timeout: no read timeout for streams.
        """
        session = self._session or self._open_session()
        try:
            raw = await session.request(
                method,
                self._url(path, query),
                headers=headers,
                data=content,
                allow_redirects=False,
                timeout=self.stream_timeout if streamed else self.call_timeout,
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamUnavailable(f"cannot connect to Ollama at {self.url}: timeout") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(f"Ollama at {self.url} did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"cannot reach Ollama at {self.url}: {type(exc).__name__}"
            ) from exc
        return UpstreamResponse(raw)

    async def reachable(self) -> bool:
        """Whether ``GET /`` answers (any status below 500) within a short timeout."""
        session = self._session or self._open_session()
        try:
            async with session.get(
                self._url("/", b""), allow_redirects=False, timeout=self._probe_timeout
            ) as response:
                await response.read()
                return response.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def aclose(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None
