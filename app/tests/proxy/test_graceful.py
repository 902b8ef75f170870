"""Shutdown never resets a connection already accepted (:mod:`guard_proxy.proxy.graceful`).

In process, on one event loop, with no await between the client's send and the start of
the shutdown: the request bytes sit unread in the kernel when the server decides which
connections are idle. uvicorn's own shutdown closes that connection with unread data (the
client gets a reset or nothing); the graceful one answers it.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn

from guard_proxy.proxy.graceful import GracefulServer

REQUEST = b"GET / HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n"


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def _answer_after_shutdown(server_class: type[uvicorn.Server], http: str) -> bytes:
    """What a client gets for a request sent just before the shutdown begins."""
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    config = uvicorn.Config(_hello, lifespan="off", log_config=None, http=http, loop="none")
    config.load()
    server = server_class(config)
    server.lifespan = config.lifespan_class(config)  # what Server.serve sets up
    await server.startup(sockets=[listener])
    client = socket.create_connection(listener.getsockname()[:2])
    try:
        while not server.server_state.connections:  # accepted by the server
            await asyncio.sleep(0.001)
        client.sendall(REQUEST)  # in the kernel, not yet read: no await from here ...
        shutdown = asyncio.ensure_future(server.shutdown(sockets=[listener]))  # ... to here
        client.setblocking(False)
        answer = b""
        try:
            while chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), 10):
                answer += chunk
        except ConnectionResetError:
            answer += b"<reset>"
        await shutdown
        return answer
    finally:
        client.close()
        listener.close()


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_request_sent_as_shutdown_begins_is_answered(http: str) -> None:
    answer = await _answer_after_shutdown(GracefulServer, http)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.endswith(b"\r\n\r\nok")


async def test_uvicorns_own_shutdown_drops_it() -> None:
    """The failure the graceful server exists for (if uvicorn changes, this says so)."""
    answer = await _answer_after_shutdown(uvicorn.Server, "httptools")
    assert not answer.startswith(b"HTTP/1.1 200 "), answer
