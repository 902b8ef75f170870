"""Fixtures for the operator commands: run ``python -m guard_proxy`` as a subprocess.

Every command runs with a clean environment (no ``REDIS_*``, ``CACHE_*``, ... inherited
from the developer's shell), and every run is checked for secrets leaking into its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import pytest
from support.fixtures import redis_server, redis_server_factory  # noqa: F401

_OWN_ENV_PREFIXES = (
    "ACCESS_",
    "CACHE_",
    "GUARD_",
    "LOG_LEVEL",
    "OLLAMA_",
    "PROXY_",
    "REDIS_",
)


@dataclass
class Result:
    """What one CLI run printed and returned."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return (
            f"$ guard-proxy {' '.join(self.args)}\n-> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without any guard-proxy setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


RunCli = Callable[..., Result]


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
