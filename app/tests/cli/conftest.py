"""Fixtures for the operator commands: run ``python -m guard_proxy`` as a subprocess.

Every command runs with a clean environment (``guard_proxy_testing.processes.clean_env``: no
``REDIS_*``, ``CACHE_*``, ... inherited from the developer's shell), and every run is checked
for secrets leaking into its output. Instances come from ``guard_proxy_testing.processes`` (as
for the proxy tests).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from guard_proxy_testing.cli import Result, RunCli
from guard_proxy_testing.inproc import InProcessProxy, start_inprocess_proxy
from guard_proxy_testing.processes import (
    ADMIN_TOKEN,
    FakeOllama,
    Proxy,
    clean_env,
    spawn_proxy,
)


@pytest.fixture
def secrets() -> list[str]:
    """Secrets a test registers; no CLI output of that test may contain any of them."""
    return []


@pytest.fixture
def run_cli(secrets: list[str]) -> Iterator[RunCli]:
    """``run_cli(*args, env={...})`` runs ``python -m guard_proxy``; returns a :class:`Result`."""
    results: list[Result] = []

    def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "guard_proxy", *args],
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        result = Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)
        results.append(result)
        return result

    yield run
    for result in results:
        for secret in secrets:
            assert secret not in result.output, f"a secret leaked into the output of:\n{result}"


# --------------------------------------------------------------------------- a live instance


@pytest.fixture
def start_proxy(
    tmp_path: Path, fake_ollama: FakeOllama
) -> Iterator[Callable[..., Proxy | InProcessProxy]]:
    """``start_proxy(env={...})``: start an instance for the commands to ask and wait for it:
    the app in this process (``guard_proxy_testing.inproc``), or with ``process=True``
    ``guard-proxy serve`` on a socket bound here (for a test that signals the process).

    The env passed to CLI commands should be ``instance.env``: the commands then find the
    instance through ``PROXY_HOST``/``PROXY_PORT`` exactly as an operator's shell would.
    """
    started: list[Proxy | InProcessProxy] = []

    def start(env: Mapping[str, str] | None = None, process: bool = False) -> Any:
        full = {
            "PROXY_HOST": "127.0.0.1",
            "OLLAMA_URL": fake_ollama.url,
            "OLLAMA_CONNECT_TIMEOUT": "0.5",
            "REDIS_PROBE_INTERVAL": "0.2",
            "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN,
            **(env or {}),
        }
        instance: Proxy | InProcessProxy
        if process:
            instance = spawn_proxy(tmp_path / f"proxy-{len(started)}.log", full)
        else:
            instance = start_inprocess_proxy(None, full)
        started.append(instance)
        return instance

    try:
        yield start
    finally:
        for instance in started:
            instance.stop()
