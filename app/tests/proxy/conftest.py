"""Fixtures for the proxy tests: a fake Ollama and real ``guard-proxy serve`` processes.

Everything runs for real: the fake Ollama (``tests/fake_ollama.py``) in a uvicorn
subprocess, the proxy as ``python -m guard_proxy serve`` on a free port with its config in
a YAML file plus environment variables, and Redis (when a test needs it) as a real
``redis-server`` from ``support.redis_server``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.fixtures import redis_server, redis_server_factory  # noqa: F401
from support.redis_server import free_port

TESTS_DIR = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "test-admin-token-8d1f"
INPUT_TERM = "kaboom"
OUTPUT_TERM = "forbidden-term"
MAX_BODY = 65536

# The guard configuration most tests run with: one banned term per direction, so that the
# fake model can be made to *say* the output term without the prompt containing it.
BASE_CONFIG: dict[str, Any] = {
    "guard": {
        "input": {"banned_substrings": {"patterns": [INPUT_TERM]}},
        "output": {"banned_substrings": {"patterns": [OUTPUT_TERM]}},
    },
    "server": {"max_body_bytes": MAX_BODY},
    "cache": {"backend": "memory"},
}

_OWN_ENV_PREFIXES = (
    "ACCESS_",
    "CACHE_",
    "GUARD_",
    "LOG_LEVEL",
    "OLLAMA_",
    "PROXY_",
    "REDIS_",
    "FAKE_OLLAMA_",
    "NOTIFY_SOCKET",
)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without any guard-proxy or fake-Ollama setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout}s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class FakeOllama:
    """The fake upstream: its URL and its request record."""

    def __init__(self, url: str) -> None:
        self.url = url

    def requests(self, marker: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests; with ``marker``, only those whose body mentions it."""
        data = httpx.get(f"{self.url}/_fake/requests", timeout=5).json()["requests"]
        if marker is None:
            return list(data)
        return [r for r in data if marker in repr(r.get("body"))]

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.url}/_fake/stats", timeout=5).json())


@pytest.fixture(scope="session")
def fake_ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeOllama]:
    """A fake Ollama on a free port for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("fake-ollama") / "fake.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fake_ollama:app",
                "--app-dir",
                str(TESTS_DIR),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env({"FAKE_OLLAMA_CHUNK": "3", "FAKE_OLLAMA_SLOW_DELAY": "0.05"}),
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/", process, log)
        yield FakeOllama(f"http://127.0.0.1:{port}")
    finally:
        _stop(process)


class Proxy:
    """One running ``guard-proxy serve`` process."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        import json

        records = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def stop(self) -> None:
        _stop(self.process)


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


StartProxy = Callable[..., Proxy]


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
        port = free_port()
        log = workdir / "proxy.log"
        full_env = clean_env(
            {
                "OLLAMA_URL": upstream or fake_ollama.url,
                "PROXY_PORT": str(port),
                "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN,
                **(env or {}),
            }
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "guard_proxy", "serve", "--config", str(config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        proxy = Proxy(process, port, log)
        started.append(proxy)
        _wait_http(f"{proxy.url}/health", process, log)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def proxy(proxy_factory: StartProxy) -> Proxy:
    """The shared proxy: memory cache, one banned term per direction, admin token set."""
    return proxy_factory()


@pytest.fixture
def client(proxy: Proxy) -> Iterator[httpx.Client]:
    with proxy.client() as c:
        yield c


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def marker() -> str:
    """A unique word to find this test's requests in the fake Ollama's record."""
    return f"mk{os.getpid()}x{next(_counter)}x{time.monotonic_ns() % 1_000_000}"


def ndjson(body: bytes) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in body.splitlines() if line.strip()]


def sse_events(body: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[5:].strip().decode() for line in body.splitlines() if line.startswith(b"data:")]
