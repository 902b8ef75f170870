"""The processes a benchmark run owns: fake upstream, redis-server, proxies and the load generator.

Every process is started by this module, tracked, and stopped by its own PID (SIGTERM, then
SIGKILL after a bounded wait). Everything listens on 127.0.0.1 on a free port. Secrets go
through 0600 files, never argv.

Ports, loopback HTTP, readiness and redis-server come from the tests' harness (the installed
``guard_proxy_testing``: ``net`` and ``redis_server``, both free of pytest); what is left here is
bench-only: processes measured for CPU and RSS, the proxy as deployed, the load generator and
HAProxy.
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

import psutil
from guard_proxy_testing.net import free_port, http_request, wait_answering
from guard_proxy_testing.redis_server import RedisServer

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RUN_DIR = BENCH / ".run"
PY = sys.executable

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


def wait_http(url: str, proc: Proc, deadline_s: float = 20.0) -> None:
    """Poll ``url`` until it answers 200 (bounded); raise ``NotReady`` with the log otherwise."""
    wait_answering(url, proc.name, proc.popen, proc.tail, deadline_s, status=200, probe_timeout=1.0)


class Proc:
    """A started child process with its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = RUN_DIR / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(self.log, "wb") as log:
            self.popen = subprocess.Popen(
                argv,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        _started.append(self)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGCONT (in case it is frozen), SIGTERM, then SIGKILL after ``timeout``."""
        if self.popen.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout)
        except ProcessLookupError:
            pass

    def processes(self) -> list[psutil.Process]:
        p = psutil.Process(self.pid)
        return [p, *p.children(recursive=True)]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its children so far."""
        total = 0.0
        for p in self.processes():
            t = p.cpu_times()
            total += t.user + t.system
        return total

    def rss_bytes(self) -> int:
        return sum(p.memory_info().rss for p in self.processes())


def stop_all() -> None:
    """Stop every process this run started, newest first."""
    while _started:
        item = _started.pop()
        if isinstance(item, Redis):
            item.close()
        else:
            item.stop()


def start_upstream() -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(
        "upstream",
        [
            PY,
            "-m",
            "uvicorn",
            "fake_upstream:app",
            "--app-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/api/version", proc)
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
    """``python -m guard_proxy serve`` configured by env, as deployed: one uvicorn worker."""
    port = free_port()
    _, token_file = secret_file(f"{name}.admin")
    env = {
        "GUARD_PROXY_CONFIG": str(BENCH / "guard.yaml"),
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
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
    proc = Proc(name, [PY, "-m", "guard_proxy", "serve"], env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", proc)
    return proc, url


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
    proc = Proc(name, [binary, "-f", str(cfg), "-db"])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ready", proc)
    return proc, url
