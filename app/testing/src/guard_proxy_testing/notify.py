"""A fake ``$NOTIFY_SOCKET``: what systemd would receive from the proxy, for tests to read.

The ``notify_socket`` fixture around it lives in ``app/tests/proxy/conftest.py``; point the
proxy's ``NOTIFY_SOCKET`` at ``notify_socket.path`` and wait for messages with ``wait_for``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["WAIT", "NotifySocket"]

WAIT = 30.0
"""Seconds ``NotifySocket.wait_for`` waits for a matching message."""


class NotifySocket:
    """A bound ``AF_UNIX`` datagram socket; a thread collects every message it receives,
    with the ``time.monotonic()`` at which it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append((time.monotonic(), data.decode()))

    def seen(self) -> list[str]:
        """Every message so far, oldest first."""
        with self._lock:
            return [message for _, message in self.received]

    def timed(self) -> list[tuple[float, str]]:
        """Every message so far with its arrival time (``time.monotonic()``), oldest first."""
        with self._lock:
            return list(self.received)

    def wait_for(self, what: str, predicate: Callable[[str], bool], start: int = 0) -> int:
        """Index of the first message from ``start`` on that matches; fails after ``WAIT`` s."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for index, message in enumerate(self.seen()[start:], start):
                if predicate(message):
                    return index
            time.sleep(0.05)
        pytest.fail(f"no {what} in {self.seen()[-20:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
