"""Real processes for the proxy and CLI tests, the benchmarks and monitoring/render:
``guard-proxy serve`` and whatever else must run on its own.

Each runs as a subprocess with a clean environment (no guard-proxy or fake-Ollama setting
inherited from the developer's shell), its output in a log file, and is reaped by ``stop()``.
Readiness means *any* HTTP answer on a URL: an instance may refuse us (403) and still be up.
The pytest fixtures around these live in ``app/tests/conftest.py``. (``FakeOllama`` is
re-exported from :mod:`guard_proxy_testing.servers`: the fake upstream runs in-process.)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

from .net import NotReady, free_port, http_get, wait_answering
from .servers import FakeOllama, listening_socket

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
    where it runs (this process's by default); ``new_session`` puts it in a session of its own
    (the benchmarks: a Ctrl-C on the terminal reaches only the harness, which stops it).
    CPU and memory are read with psutil over the process and its children.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        pass_fd: int | None = None,
        cwd: Path | None = None,
        new_session: bool = False,
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
                start_new_session=new_session,
            )
        self.pid = self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(
        self,
        url: str,
        timeout: float = START_TIMEOUT,
        context: ssl.SSLContext | None = None,
        status: int | None = None,
    ) -> None:
        """Return once ``url`` answers (with ``status`` when given); else stop the process
        and raise :class:`NotReady` with its log. ``context`` verifies an ``https://`` URL."""
        try:
            wait_answering(
                url, self.name, self.proc, self.log_text, timeout, status=status, context=context
            )
        except NotReady:
            self.stop()
            raise

    def signal(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGCONT (in case it is frozen), SIGTERM, then SIGKILL after ``timeout``; reaped."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        """The end of the log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        """This process and its children (workers), as psutil sees them."""
        parent = psutil.Process(self.pid)
        return [parent, *parent.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its children so far."""
        return float(sum(t.user + t.system for t in (p.cpu_times() for p in self.processes())))

    def rss_bytes(self) -> int:
        return sum(p.memory_info().rss for p in self.processes())


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


_ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""
"""Between fork and exec, what systemd does for socket activation: the socket to fd 3,
``LISTEN_FDS=1``, ``LISTEN_PID`` the pid the proxy keeps after ``execv``."""


def spawn_proxy(
    log: Path,
    env: Mapping[str, str],
    args: Sequence[str] = (),
    ca_file: Path | None = None,
    *,
    sock: socket.socket | None = None,
    wait: bool = True,
    new_session: bool = False,
) -> Proxy:
    """Run ``python -m guard_proxy serve *args`` with ``env``; with ``wait``, until ``/health``.

    The listening socket is the test's, passed as systemd passes it (fd 3, ``LISTEN_FDS``):
    ``sock``, or a new one bound to a port the kernel picks, handed over and closed here, so
    the port is never free between choosing and listening. Only when ``env`` sets
    ``PROXY_PORT`` does the proxy bind 127.0.0.1 there itself (tests of its own binding).
    :attr:`Proxy.env` names the port either way (``PROXY_PORT``, for CLI commands). On a failed
    start the process is stopped and :class:`NotReady` raised with its log. ``ca_file``: the
    instance serves HTTPS with a certificate from that CA (see :class:`Proxy`).
    """
    full = dict(env)
    serve = [sys.executable, "-m", "guard_proxy", "serve", *args]
    if "PROXY_PORT" in full and sock is None:
        port = int(full["PROXY_PORT"])
        process = Process("guard-proxy serve", serve, full, log, new_session=new_session)
    else:
        own = sock if sock is not None else listening_socket()
        port = int(own.getsockname()[1])
        argv = [sys.executable, "-c", _ACTIVATE, str(own.fileno()), *serve]
        try:
            process = Process(
                "guard-proxy serve (socket passed)",
                argv,
                full,
                log,
                pass_fd=own.fileno(),
                new_session=new_session,
            )
        finally:
            if sock is None:
                own.close()  # the child holds it now
        full["PROXY_PORT"] = str(port)
    proxy = Proxy(full, port, process, ca_file)
    if wait:
        try:
            process.wait_ready(f"{proxy.url}/health", context=proxy.ssl_context())
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
