"""The processes a benchmark run owns: fake upstream, redis-server, proxies and the load generator.

Every process is started by this module, tracked, and stopped by its own PID (SIGCONT,
SIGTERM, then SIGKILL after a bounded wait). Everything listens on 127.0.0.1: the proxies and
the upstream on a socket bound here and passed in, redis-server and HAProxy on a free port.
Secrets go through 0600 files, never argv.

Processes (``Proc``: the harness's ``Process``, with CPU and RSS through psutil), the proxy's
start (``spawn_proxy``), ports, loopback HTTP and redis-server come from the tests' harness,
the installed ``guard_proxy_testing``; what is left here is bench-only: the proxy configured
as deployed, the load generator and HAProxy.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from guard_proxy_testing.net import free_port, http_request
from guard_proxy_testing.processes import Process as Proc
from guard_proxy_testing.processes import spawn_proxy
from guard_proxy_testing.redis_server import RedisServer
from guard_proxy_testing.servers import listening_socket

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RUN_DIR = BENCH / ".run"
PY = sys.executable
READY_S = 20.0

_started: list[Proc | Redis] = []


def secret_file(name: str) -> tuple[str, Path]:
    """A fresh random secret written to a 0600 file under the run directory."""
    value = secrets.token_urlsafe(24)
    path = RUN_DIR / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, path


def http_get(url: str, timeout: float = 1.0, headers: dict[str, str] | None = None) -> Any:
    """GET a loopback URL and decode JSON (None for non-JSON bodies); an HTTP error raises."""
    status, raw = http_request(url, headers=headers, timeout=timeout)
    if status >= 400:
        raise RuntimeError(f"GET {url}: HTTP {status}: {raw[:200]!r}")
    try:
        return json.loads(raw)
    except ValueError:
        return None


def http_post(url: str, headers: dict[str, str], timeout: float = 5.0) -> int:
    return http_request(url, method="POST", data=b"", headers=headers, timeout=timeout)[0]


def start(name: str, argv: list[str], env: dict[str, str] | None = None, **kw: Any) -> Proc:
    """``argv`` as the harness's :class:`Process` (clean environment plus ``env``, a session of
    its own), logged to ``RUN_DIR/<name>.log``, tracked for :func:`stop_all`."""
    log = RUN_DIR / f"{name}.log"
    log.unlink(missing_ok=True)
    proc = Proc(name, argv, env or {}, log, cwd=ROOT, new_session=True, **kw)
    _started.append(proc)
    return proc


def stop_all() -> None:
    """Stop every process this run started, newest first."""
    while _started:
        item = _started.pop()
        if isinstance(item, Redis):
            item.close()
        else:
            item.stop()


def start_upstream() -> tuple[Proc, str]:
    """The bench's fake upstream under uvicorn, on a socket bound here (``--fd``)."""
    sock = listening_socket()
    argv = [PY, "-m", "uvicorn", "fake_upstream:app", "--app-dir", str(BENCH)]
    argv += ["--fd", str(sock.fileno()), "--no-access-log", "--log-level", "warning"]
    argv += ["--loop", "uvloop", "--http", "httptools"]
    port = sock.getsockname()[1]
    try:
        proc = start("upstream", argv, pass_fd=sock.fileno())
    finally:
        sock.close()  # the child holds it
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(url + "/api/version", READY_S, status=200)
    return proc, url


class Redis(RedisServer):
    """The tests' ``RedisServer`` (password, no persistence, free loopback port, freeze/thaw),
    its password also in a 0600 file for the proxies, its log under the run directory."""

    def __init__(self, name: str = "redis") -> None:
        super().__init__()
        self.name = name
        self.log_path = RUN_DIR / f"{name}.log"
        self.password_file = self.write_password_file(RUN_DIR / f"{name}.pass")
        _started.append(self)

    def stop(self) -> None:
        """SIGTERM (thawed first if frozen); a no-op when it does not run."""
        if self.running:
            self.terminate()


def start_proxy(
    name: str, upstream: str, backend: str, redis: Redis | None, extra: dict[str, str] | None = None
) -> tuple[Proc, str]:
    """``python -m guard_proxy serve`` configured by env, as deployed (one uvicorn worker),
    on a socket bound here and passed in as systemd's socket unit does."""
    _, token_file = secret_file(f"{name}.admin")
    env = {
        "GUARD_PROXY_CONFIG": str(BENCH / "guard.yaml"),
        "OLLAMA_URL": upstream,
        "CACHE_BACKEND": backend,
        "CACHE_MAX_SIZE": "250000",
        "CACHE_TTL": "3600",
        "GUARD_PROXY_ADMIN_TOKEN_FILE": str(token_file),
        "REDIS_ENABLED": "true" if redis else "false",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if redis:
        env.update(
            REDIS_HOST="127.0.0.1",
            REDIS_PORT=str(redis.port),
            REDIS_PASSWORD_FILE=str(redis.password_file),
        )
    env.update(extra or {})
    log = RUN_DIR / f"{name}.log"
    log.unlink(missing_ok=True)
    proxy = spawn_proxy(log, env, new_session=True, wait=False)
    proxy.process.name = name
    _started.append(proxy.process)
    proxy.process.wait_ready(proxy.url + "/health", READY_S, status=200)
    return proxy.process, proxy.url


def admin_headers(name: str) -> dict[str, str]:
    token = (RUN_DIR / f"{name}.admin").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


class LoadGen:
    """The load generator process; ``run(job)`` sends one job and waits (bounded) for its answer."""

    def __init__(self) -> None:
        with open(RUN_DIR / "loadgen.err", "wb") as err:
            self.popen = subprocess.Popen(
                [PY, str(BENCH / "loadgen.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
                start_new_session=True,
            )
        self.sel = selectors.DefaultSelector()
        assert self.popen.stdout
        self.sel.register(self.popen.stdout, selectors.EVENT_READ)

    def run(self, job: dict[str, Any], timeout: float = 180.0) -> dict[str, Any]:
        assert self.popen.stdin and self.popen.stdout
        self.popen.stdin.write(json.dumps(job).encode() + b"\n")
        self.popen.stdin.flush()
        if not self.sel.select(timeout):
            raise RuntimeError(f"load generator timed out on {job['kind']}")
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("load generator exited: " + (RUN_DIR / "loadgen.err").read_text())
        result: dict[str, Any] = json.loads(line)
        if not result.get("ok"):
            raise RuntimeError(f"load generator failed on {job['kind']}: {result.get('error')}")
        return result

    def close(self) -> None:
        if self.popen.poll() is None:
            assert self.popen.stdin
            self.popen.stdin.close()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


# --------------------------------------------------------------------------- HAProxy

HAPROXY_INSTALL = (
    "haproxy not found on PATH: the workers phase measures the proxy through HAProxy too. "
    "Install it (Debian: `sudo apt-get install haproxy`; 2.6 is what the haproxy role "
    "deploys) or leave the phase out: bench/run.py --only <other phases>."
)


def haproxy_binary() -> str:
    """The haproxy executable, or a RuntimeError that says how to install it (never skipped)."""
    for path in (shutil.which("haproxy"), "/usr/sbin/haproxy"):
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError(HAPROXY_INSTALL)


def haproxy_config(port: int, backends: list[str]) -> str:
    """A minimal front door shaped like roles/haproxy/templates/haproxy.cfg.j2: mode http,
    X-Forwarded-For, leastconn, active checks on /ready, long timeouts for streams, the
    request log on stdout as deployed. No chroot/user/stats socket: it runs unprivileged."""
    servers = "\n".join(
        f"    server p{i} {urlsplit(url).hostname}:{urlsplit(url).port}"
        for i, url in enumerate(backends, 1)
    )
    return f"""global
    log stdout format short local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    retries 2
    retry-on conn-failure empty-response
    option redispatch 1
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout http-request 30s
    timeout http-keep-alive 10s
    timeout queue 30s
    timeout check 5s

frontend bench_front
    bind 127.0.0.1:{port}
    default_backend bench_proxies

backend bench_proxies
    balance leastconn
    option httpchk
    http-check send meth GET uri /ready
    http-check expect status 200
    default-server check inter 2s fall 3 rise 2
{servers}
"""


def start_haproxy(name: str, backends: list[str]) -> tuple[Proc, str]:
    """``haproxy -f <cfg> -db`` in front of ``backends`` (proxy base URLs), after ``-c``."""
    binary = haproxy_binary()
    port = free_port()
    cfg = RUN_DIR / f"{name}.cfg"
    cfg.write_text(haproxy_config(port, backends))
    check = subprocess.run(
        [binary, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c rejected {cfg}:\n{check.stdout}{check.stderr}")
    proc = start(name, [binary, "-f", str(cfg), "-db"])
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(url + "/ready", READY_S, status=200)
    return proc, url
