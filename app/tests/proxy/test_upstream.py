"""The upstream client against small raw HTTP servers: timeouts, byte-exact bodies, no extras."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from guard_proxy.config import OllamaSettings
from guard_proxy.proxy.upstream import (
    Upstream,
    UpstreamBroken,
    UpstreamTimeout,
    UpstreamUnavailable,
    forward_headers,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


class _Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> _Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def upstream_for() -> AsyncIterator[Callable[[int], Upstream]]:
    made: list[Upstream] = []

    def make(port: int) -> Upstream:
        settings = OllamaSettings(url=f"http://127.0.0.1:{port}", connect_timeout=2.0, timeout=0.3)
        made.append(Upstream(settings))
        return made[-1]

    yield make
    for upstream in made:
        await upstream.aclose()


async def test_silent_upstream_times_out_a_call(upstream_for: Callable[[int], Upstream]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        await asyncio.sleep(30)

    async with _Server(silent) as server:
        with pytest.raises(UpstreamTimeout):
            await upstream_for(server.port).open(
                "POST", "/api/generate", b"", [], b"{}", streamed=False
            )


async def test_streams_have_no_read_timeout(upstream_for: Callable[[int], Upstream]) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"one\n", b"two\n"):
            await asyncio.sleep(0.6)  # twice the call timeout between pieces
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with _Server(slow) as server:
        response = await upstream_for(server.port).open(
            "POST", "/api/generate", b"", [], b"{}", streamed=True
        )
        try:
            assert b"".join([c async for c in response.chunks()]) == b"one\ntwo\n"
        finally:
            await response.aclose()


async def test_refused_connection_is_unavailable(upstream_for: Callable[[int], Upstream]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(UpstreamUnavailable):
        await upstream_for(port).open("GET", "/api/tags", b"", [], None, streamed=False)


async def test_bodies_pass_byte_exact_and_nothing_is_added(
    upstream_for: Callable[[int], Upstream],
) -> None:
    body = gzip.compress(b'{"models": []}')
    seen: list[bytes] = []

    async def gz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await _head(reader)
            seen.append(head)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nSet-Cookie: s=1\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    async with _Server(gz) as server:
        upstream = upstream_for(server.port)
        headers = forward_headers(
            [(b"accept-encoding", b"gzip"), (b"x-client", b"a")], identity=False
        )
        for _ in range(2):
            response = await upstream.open(
                "GET", "/api/tags", b"q=1", headers, None, streamed=False
            )
            try:
                assert await response.read() == body  # not decompressed
                assert (b"content-encoding", b"gzip") in response.headers()
            finally:
                await response.aclose()
    assert len(seen) == 2
    first, second = (h.lower().split(b"\r\n") for h in seen)
    assert first[0] == b"get /api/tags?q=1 http/1.1"
    names = {line.split(b":")[0] for line in second[1:] if line}
    assert names == {b"host", b"accept-encoding", b"x-client"}  # no cookie, no user-agent
    assert b"accept-encoding: gzip" in second


async def test_body_cut_short_is_broken(upstream_for: Callable[[int], Upstream]) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()

    async with _Server(cut) as server:
        response = await upstream_for(server.port).open(
            "POST", "/api/generate", b"", [], b"{}", streamed=True
        )
        try:
            with pytest.raises(UpstreamBroken):
                async for _ in response.chunks():
                    pass
        finally:
            await response.aclose()
