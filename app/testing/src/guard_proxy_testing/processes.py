"""Real processes for the proxy and CLI tests: a fake Ollama and ``guard-proxy serve``.

Each runs as a subprocess with a clean environment (no guard-proxy or fake-Ollama setting
inherited from the developer's shell), its output in a log file, and is reaped by ``stop()``.
Readiness means *any* HTTP answer on a URL: an instance may refuse us (403) and still be up.
The pytest fixtures around these live in ``app/tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from .net import NotReady, free_port, http_get, wait_answering

__all__ = [
    "ADMIN_TOKEN",
    "START_TIMEOUT",
    "FakeOllama",
    "Process",
    "Proxy",
    "assert_serve_config_error",
    "clean_env",
    "free_port",
    "http_get",
    "spawn_fake_ollama",
    "spawn_proxy",
]

START_TIMEOUT = 30.0
ADMIN_TOKEN = "admin-" + secrets.token_hex(12)
"""The admin token every test proxy starts with (unless a test overrides it)."""

_OWN_ENV_PREFIXES = (
    "ACCESS_",
    "CACHE_",
    "GUARD_",
    "LISTEN_",
    "LOG_LEVEL",
    "OLLAMA_",
    "PROXY_",
    "REDIS_",
    "FAKE_OLLAMA_",
    "NOTIFY_SOCKET",
    "JOURNAL_STREAM",
    "WATCHDOG_",
)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without any guard-proxy or fake-Ollama setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Process:
    """A subprocess started with ``clean_env(env)``, its output appended to ``log``.

    ``pass_fd`` is a file descriptor the child inherits (e.g. a listening socket); ``cwd`` is
    where it runs (this process's by default).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        pass_fd: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                env=clean_env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                pass_fds=() if pass_fd is None else (pass_fd,),
            )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(
        self, url: str, timeout: float = START_TIMEOUT, context: ssl.SSLContext | None = None
    ) -> None:
        """Return once ``url`` answers; fail the test if the process exits or never answers.

        ``context`` verifies an ``https://`` URL."""
        try:
            wait_answering(url, self.name, self.proc, self.log_text, timeout, context=context)
        except NotReady as exc:
            self.stop()
            pytest.fail(str(exc))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; always reaped."""
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_text(self) -> str:
        """The end of the log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class FakeOllama:
    """The fake upstream (:mod:`guard_proxy_testing.fake_ollama` under uvicorn): its URL and
    request record."""

    def __init__(self, url: str, process: Process) -> None:
        self.url = url
        self.process = process

    def requests(self, marker: str | None = None) -> list[dict[str, Any]]:
        """Recorded requests; with ``marker``, only those whose body mentions it."""
        data = httpx.get(f"{self.url}/_fake/requests", timeout=5).json()["requests"]
        if marker is None:
            return list(data)
        return [r for r in data if marker in repr(r.get("body"))]

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.url}/_fake/stats", timeout=5).json())

    def stop(self) -> None:
        self.process.stop()


def spawn_fake_ollama(log: Path, env: Mapping[str, str] | None = None) -> FakeOllama:
    """Start the fake Ollama on a free port (``FAKE_OLLAMA_*`` knobs in ``env``); wait for it."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "guard_proxy_testing.fake_ollama:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = Process("fake ollama", argv, env or {}, log)
    url = f"http://127.0.0.1:{port}"
    process.wait_ready(f"{url}/api/version")
    return FakeOllama(url, process)


class Proxy:
    """A running ``guard-proxy serve`` and the environment that configures it.

    Pass ``env`` to CLI commands: they then find the instance through ``PROXY_HOST``/
    ``PROXY_PORT`` exactly as an operator's shell would. With ``ca_file`` the instance serves
    HTTPS (its ``PROXY_TLS_*`` in ``env``): :attr:`url` is ``https://`` and :meth:`client`
    verifies against that CA.
    """

    def __init__(
        self, env: dict[str, str], port: int, process: Process, ca_file: Path | None = None
    ) -> None:
        self.env = env
        self.port = port
        self.ca_file = ca_file
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{port}"
        self.process = process
        self.log = process.log

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting :attr:`ca_file`, or ``None`` for plain HTTP."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON lines of the log (anything else skipped)."""
        records = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def client(self, **kwargs: Any) -> httpx.Client:
        context = self.ssl_context()
        if context is not None:
            kwargs.setdefault("verify", context)
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def stop(self) -> None:
        self.process.stop()


def spawn_proxy(
    log: Path, env: Mapping[str, str], args: Sequence[str] = (), ca_file: Path | None = None
) -> Proxy:
    """Run ``python -m guard_proxy serve *args`` with ``env`` and wait for ``/health``.

    ``env`` must set ``PROXY_PORT`` (the instance listens on 127.0.0.1 there); on a failed
    start the test fails with the log and the process is stopped. ``ca_file``: the instance
    serves HTTPS with a certificate from that CA (see :class:`Proxy`).
    """
    full = dict(env)
    port = int(full["PROXY_PORT"])
    argv = [sys.executable, "-m", "guard_proxy", "serve", *args]
    proxy = Proxy(full, port, Process("guard-proxy serve", argv, full, log), ca_file)
    try:
        proxy.process.wait_ready(f"{proxy.url}/health", context=proxy.ssl_context())
    except BaseException:
        proxy.stop()
        raise
    return proxy


def assert_serve_config_error(
    workdir: Path,
    yaml_text: str,
    env: Mapping[str, str],
    key: str,
    problem: str,
    timeout: float = 60.0,
) -> None:
    """``guard-proxy serve`` on ``yaml_text`` with ``env`` refuses to start as a config error.

    The config is written to ``workdir/config.yaml``; ``PROXY_PORT`` is a free port. Asserts
    exit code 2, ``key`` and ``problem`` on stderr, and no traceback.
    """
    config = workdir / "config.yaml"
    config.write_text(yaml_text)
    result = subprocess.run(
        [sys.executable, "-m", "guard_proxy", "serve", "--config", str(config)],
        env=clean_env({**env, "PROXY_PORT": str(free_port())}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    # Plain asserts (pytest does not rewrite this module): say what was seen.
    assert result.returncode == 2, f"exit code {result.returncode}, not 2:\n{result.stderr}"
    assert key in result.stderr and problem in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
