"""A uvicorn server whose shutdown never resets a connection it has already accepted.

uvicorn's shutdown stops accepting, then closes every connection with no request in
progress at once. A connection the process accepted a moment ago whose request bytes are
already in the kernel's buffer, but not yet read by the event loop, counts as idle: it is
closed with unread data, which the kernel answers with a TCP reset, so the client sees
``Connection reset by peer`` for a request it sent before the shutdown began (seen as one
in 128 requests failing while a socket-activated proxy restarted under traffic).

:class:`GracefulServer` stops accepting first, then gives the event loop
:data:`ACCEPT_GRACE` seconds to read what those connections have sent; a request that has
begun by then is answered like any other in flight (its response ends with
``Connection: close``), and only connections still silent are closed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import uvicorn

__all__ = ["ACCEPT_GRACE", "GracefulServer"]

ACCEPT_GRACE = 0.25
"""Seconds an accepted connection gets, once accepting stopped, to deliver its request."""


class GracefulServer(uvicorn.Server):
    """:class:`uvicorn.Server` with the shutdown order described in the module docstring."""

    async def shutdown(self, sockets: Sequence[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting; uvicorn's own close below is then a no-op
        if any(_idle(connection) for connection in self.server_state.connections):
            await asyncio.sleep(ACCEPT_GRACE)
        await super().shutdown(sockets=list(sockets) if sockets is not None else None)


def _idle(connection: object) -> bool:
    """Whether uvicorn would close this connection at once (no request in progress)."""
    cycle = getattr(connection, "cycle", None)
    return cycle is None or bool(getattr(cycle, "response_complete", True))
