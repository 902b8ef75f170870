"""Fixtures shared by the test packages; the helpers behind them live in the installed
``guard_proxy_testing`` package (``app/testing``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from guard_proxy_testing.fixtures import redis_server, redis_server_factory  # noqa: F401
from guard_proxy_testing.servers import FakeOllama, start_fake_ollama


@pytest.fixture(scope="session")
def fake_ollama() -> Iterator[FakeOllama]:
    """A fake Ollama in a thread of the test process for the whole session (3-character
    stream chunks), on a socket bound before it starts."""
    fake = start_fake_ollama({"FAKE_OLLAMA_CHUNK": "3", "FAKE_OLLAMA_SLOW_DELAY": "0.05"})
    try:
        yield fake
    finally:
        fake.stop()
