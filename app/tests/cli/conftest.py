"""Fixtures for the operator commands: run ``python -m guard_proxy`` as a subprocess.

Every command runs with a clean environment (no ``REDIS_*``, ``CACHE_*``, ... inherited
from the developer's shell), and every run is checked for secrets leaking into its output.
"""

from __future__ import annotations

import os
import secrets as random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.fixtures import redis_server, redis_server_factory  # noqa: F401
from support.redis_server import free_port

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


# --------------------------------------------------------------------------- a live instance

TESTS_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """``(status, body)``; raises ``OSError`` when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from exc


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` if it never becomes true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    """Any HTTP answer counts: an instance may refuse us (403) and still be up."""
    try:
        http_get(url)
    except OSError:
        return False
    return True


class Process:
    """A subprocess with its output in a log file; ``stop()`` terminates and reaps it."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=clean_env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=TESTS_DIR,
            )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()}")
            if _answers(url):
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"{self.name} did not answer {url} in time:\n{self.log_text()}")

    def stop(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@pytest.fixture
def fake_ollama(tmp_path: Path) -> Iterator[str]:
    """A running fake Ollama under uvicorn; yields its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "fake_ollama:app", "--app-dir", str(TESTS_DIR)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = Process("fake ollama", argv, {}, tmp_path / "fake-ollama.log")
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_ready(f"{url}/api/version")
        yield url
    finally:
        proc.stop()


@dataclass
class Instance:
    """A running ``guard-proxy serve`` and the environment that configures it."""

    env: dict[str, str]
    url: str
    process: Process

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
def start_proxy(tmp_path: Path, fake_ollama: str) -> Iterator[Callable[..., Instance]]:
    """``start_proxy(env={...})``: start ``guard-proxy serve`` on a free port and wait for it.

    The env passed to CLI commands should be ``instance.env``: the commands then find the
    instance through ``PROXY_HOST``/``PROXY_PORT`` exactly as an operator's shell would.
    """
    started: list[Instance] = []

    def start(env: Mapping[str, str] | None = None) -> Instance:
        port = free_port()
        full = {
            "PROXY_HOST": "127.0.0.1",
            "PROXY_PORT": str(port),
            "OLLAMA_URL": fake_ollama,
            "OLLAMA_CONNECT_TIMEOUT": "0.5",
            "REDIS_PROBE_INTERVAL": "0.2",
            "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN,
            **(env or {}),
        }
        log = tmp_path / f"proxy-{port}.log"
        proc = Process(
            "guard-proxy serve", [sys.executable, "-m", "guard_proxy", "serve"], full, log
        )
        instance = Instance(full, f"http://127.0.0.1:{port}", proc)
        started.append(instance)
        proc.wait_ready(f"{instance.url}/health")
        return instance

    try:
        yield start
    finally:
        for instance in started:
            instance.stop()


ADMIN_TOKEN = "admin-" + random.token_hex(12)
