"""Fixtures for the proxy tests: real ``guard-proxy serve`` processes on the fake Ollama.

Everything runs for real (see ``guard_proxy_testing.processes``): the session's fake Ollama from
``tests/conftest.py``, the proxy as ``python -m guard_proxy serve`` on a listening socket the
fixture binds and passes in (as systemd would), its config in a YAML file plus environment
variables, and Redis (when a test needs it) as a real
``redis-server`` from ``guard_proxy_testing.redis_server``. ``notify_socket`` plays systemd's
``$NOTIFY_SOCKET`` (``guard_proxy_testing.notify``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from guard_proxy_testing.inproc import InProcessProxy, start_inprocess_proxy
from guard_proxy_testing.net import NotReady
from guard_proxy_testing.notify import NotifySocket
from guard_proxy_testing.processes import ADMIN_TOKEN, Proxy, free_port, spawn_proxy
from guard_proxy_testing.proxies import BASE_CONFIG, StartApp, StartProxy, deep_merge
from guard_proxy_testing.servers import FakeOllama


@pytest.fixture(scope="session")
def proxy_factory(
    fake_ollama: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartProxy]:
    """``start(config={...}, env={...}, upstream=URL)`` runs a proxy; all stopped at the end."""
    started: list[Proxy] = []

    def start(
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        upstream: str | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> Proxy:
        workdir = tmp_path_factory.mktemp("proxy")
        config_path = workdir / "config.yaml"
        merged = deep_merge(dict(BASE_CONFIG if base is None else base), config or {})
        config_path.write_text(yaml.safe_dump(merged))
        full_env = {
            "OLLAMA_URL": upstream or fake_ollama.url,
            "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN,
            **(env or {}),
        }
        args = ["--config", str(config_path)]
        if "PROXY_WORKERS" in full_env and "PROXY_PORT" not in full_env:
            proxy = _self_bound(workdir / "proxy.log", full_env, args)
        else:
            proxy = spawn_proxy(workdir / "proxy.log", full_env, args)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def _self_bound(log: Path, env: dict[str, str], args: list[str]) -> Proxy:
    """A proxy that binds a free port itself (the workers tests check that the supervisor
    does); a start that lost the port to another process meanwhile is retried on a new one."""
    for attempt in range(1, 4):
        try:
            return spawn_proxy(log, {**env, "PROXY_PORT": str(free_port())}, args)
        except NotReady as exc:
            if "cannot listen" not in str(exc) or attempt == 3:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def app_factory(
    fake_ollama: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartApp]:
    """``start(config={...}, env={...}, upstream=URL)`` as :func:`proxy_factory`, but the app
    runs in this process (``guard_proxy_testing.inproc``): for tests of what it answers, not
    of the process. All stopped at the end."""
    started: list[InProcessProxy] = []

    def start(
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        upstream: str | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> InProcessProxy:
        config_path = tmp_path_factory.mktemp("app") / "config.yaml"
        merged = deep_merge(dict(BASE_CONFIG if base is None else base), config or {})
        config_path.write_text(yaml.safe_dump(merged))
        full_env = {
            "OLLAMA_URL": upstream or fake_ollama.url,
            "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN,
            **(env or {}),
        }
        app = start_inprocess_proxy(config_path, full_env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture(scope="session")
def proxy(app_factory: StartApp) -> InProcessProxy:
    """The shared proxy, in this process: memory cache, one banned term per direction, admin
    token set."""
    return app_factory()


@pytest.fixture
def client(proxy: InProcessProxy) -> Iterator[httpx.Client]:
    with proxy.client() as c:
        yield c


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """A fake ``$NOTIFY_SOCKET`` at ``tmp_path/notify.sock``; closed afterwards."""
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        yield sock
    finally:
        sock.close()


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def marker() -> str:
    """A unique word to find this test's requests in the fake Ollama's record."""
    return f"mk{os.getpid()}x{next(_counter)}x{time.monotonic_ns() % 1_000_000}"
