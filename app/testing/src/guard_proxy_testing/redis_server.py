"""A real ``redis-server`` for tests: free port, password, temp dir, and the faults we test.

``RedisServer`` starts ``/usr/bin/redis-server`` bound to 127.0.0.1 on a free port with
``requirepass`` (written to a 0600 config file, so the password never shows in the process
list), no persistence (``save ""``, ``appendonly no``), and its files in a temp dir. It can
then be killed (SIGKILL), shut down (SHUTDOWN NOSAVE), frozen (SIGSTOP) and thawed
(SIGCONT), and restarted on the same port. Stdlib plus the ``redis`` client only, so bench
and ops scripts may use it outside pytest too::

    with RedisServer() as server:
        server.client().set("k", "v")
        server.freeze(); ...; server.thaw()
        server.kill(); server.restart()

Ports: redis-server cannot take a listening socket from its parent, nor report the port it
got for ``port 0``, so the port is picked free and may be taken by another process before
redis-server binds it. A first start that fails that way ("Address already in use" in its
log) is retried on a new port, and an authenticated PING (random password) tells our server
from anyone else's; ``restart()`` keeps the port it had.

The server binary is ``$GUARD_TEST_REDIS_SERVER`` (default ``/usr/bin/redis-server``):
``GUARD_TEST_REDIS_SERVER=/usr/bin/valkey-server`` runs the same tests against Valkey
(Debian's valkey-server; scripts/test-all.sh does that for the Redis test files). Sentinels
are the same binary with ``--sentinel``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .net import free_port

__all__ = [
    "REDIS_SERVER_BINARY",
    "REDIS_SERVER_NAME",
    "RedisServer",
    "SentinelServer",
    "free_port",
    "replica_of",
]

REDIS_SERVER_BINARY = os.environ.get("GUARD_TEST_REDIS_SERVER", "/usr/bin/redis-server")
# "redis-server" or "valkey-server": the name the process runs under.
REDIS_SERVER_NAME = Path(REDIS_SERVER_BINARY).name
START_TIMEOUT = 10.0


class RedisServer:
    """One redis-server process under test control. Not thread-safe; one owner.

    **Parameters:**

    * **password** - ``requirepass``; a random one by default. ``None`` disables auth.
    * **port** - fixed port; a free one by default. ``restart()`` keeps it.
    * **extra_config** - extra ``redis.conf`` lines (e.g. ``"maxmemory 10mb"``).
    * **tls** - serve TLS only (``port 0``, ``tls-port``) with a throw-away CA and a server
      certificate for 127.0.0.1/localhost made by ``openssl``; see :attr:`ca_file`.
    """

    def __init__(
        self,
        *,
        password: str | None = "",
        port: int | None = None,
        host: str = "127.0.0.1",
        extra_config: Iterable[str] = (),
        tls: bool = False,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._port_chosen = port is None  # ours to change while it never ran
        self.password: str | None = secrets.token_hex(16) if password == "" else password
        self.extra_config = list(extra_config)
        self.dir = Path(tempfile.mkdtemp(prefix="guard-redis-"))
        self.config_path = self.dir / "redis.conf"
        self.log_path = self.dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._frozen = False
        self.tls = tls
        self.ca_file = self.dir / "ca.crt"
        if tls:
            make_certificates(self.dir)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RedisServer:
        """Start redis-server and wait until an authenticated PING answers.

        A first start whose port another process took meanwhile moves to a new port."""
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                return self._start()
            except PortTaken:
                if not self._port_chosen:
                    raise
                self.port = free_port(self.host)
        return self._start()

    def _start(self) -> RedisServer:
        if self.running:
            raise RuntimeError("redis-server is already running")
        self._write_config()
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER_BINARY, str(self.config_path), *self._mode_args()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )
        self._frozen = False
        self._wait_ready()
        self._port_chosen = False  # it ran here: restart() must come back on this port
        return self

    def restart(self) -> RedisServer:
        """Stop whatever runs (frozen or not) and start again on the same port, empty."""
        if self.running:
            self.kill()
        return self.start()

    def kill(self) -> None:
        """SIGKILL the process (works on a frozen one too) and reap it."""
        proc = self._require_process()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self._frozen = False

    def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``: Redis closes its clients and exits cleanly."""
        proc = self._require_process()
        if self._frozen:
            self.thaw()
        # The server closes the connection as it exits.
        with contextlib.suppress(redis.exceptions.ConnectionError), self.client() as client:
            client.shutdown(nosave=True)
        proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM: a graceful stop the way systemd does it."""
        proc = self._require_process()
        if self._frozen:
            self.thaw()
        proc.terminate()
        proc.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: the port stays open, connections are accepted by the kernel, nothing answers."""
        self._require_process().send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        self._require_process().send_signal(signal.SIGCONT)
        self._frozen = False

    def close(self) -> None:
        """Stop the process if it runs and remove the temp dir. Idempotent."""
        if self.running:
            with contextlib.suppress(Exception):  # best-effort cleanup
                self.kill()
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ state

    @property
    def running(self) -> bool:
        """True while the process exists (frozen counts as running)."""
        return self.process is not None and self.process.poll() is None

    @property
    def frozen(self) -> bool:
        return self._frozen and self.running

    @property
    def pid(self) -> int:
        return self._require_process().pid

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """``REDIS_*`` variables that point guard-proxy at this server (password included)."""
        env = {"REDIS_HOST": self.host, "REDIS_PORT": str(self.port)}
        if self.password:
            env["REDIS_PASSWORD"] = self.password
        return env

    def write_password_file(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the password (plus a newline) to a 0600 file; returns its path."""
        target = Path(path) if path is not None else self.dir / "password"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write((self.password or "") + "\n")
        return target

    def settings(self, **overrides: Any) -> Any:
        """A ``guard_proxy.config.RedisSettings`` for this server, with ``overrides`` applied."""
        from guard_proxy.config.settings import RedisSettings

        values: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.password:
            values["password"] = self.password
        if self.tls:
            values.update(tls=True, tls_ca_file=str(self.ca_file))
        values.update(overrides)
        return RedisSettings(**values)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A synchronous, authenticated client for assertions (decode_responses on, no retries)."""
        options: dict[str, Any] = {
            "retry": Retry(NoBackoff(), 0),
            "host": self.host,
            "port": self.port,
            "password": self.password,
            "decode_responses": True,
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
        }
        if self.tls:
            options.update(ssl=True, ssl_ca_certs=str(self.ca_file))
        options.update(kwargs)
        return redis.Redis(**options)

    def command_calls(self) -> dict[str, int]:
        """``INFO commandstats`` as ``{"get": n, "set": n, ...}`` (lower-case names)."""
        with self.client() as client:
            stats: Mapping[str, Any] = client.info("commandstats")
        return {
            name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()
        }

    def reset_stats(self) -> None:
        """``CONFIG RESETSTAT``: zero the command counters."""
        with self.client() as client:
            client.config_resetstat()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # ------------------------------------------------------------------ internals

    def _mode_args(self) -> list[str]:
        return []

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError("redis-server was never started")
        return self.process

    def _config_lines(self) -> list[str]:
        return [
            "save ''",
            "appendonly no",
            "databases 16",
        ]

    def _write_config(self) -> None:
        if self.tls:
            listen = [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.dir / 'server.crt'}",
                f"tls-key-file {self.dir / 'server.key'}",
                f"tls-ca-cert-file {self.ca_file}",
                "tls-auth-clients optional",
            ]
        else:
            listen = [f"port {self.port}"]
        lines = [
            f"bind {self.host}",
            *listen,
            f"dir {self.dir}",
            "daemonize no",
            "protected-mode yes",
            "loglevel notice",
            f"pidfile {self.dir / 'redis.pid'}",
            *self._config_lines(),
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        lines.extend(self.extra_config)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def _wait_ready(self) -> None:
        proc = self._require_process()
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                text = self.log_text()
                if "Address already in use" in text[self._log_offset :]:
                    raise PortTaken(f"{self.address} was taken before redis-server bound it")
                raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{text[-2000:]}")
            try:
                with self.client(socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                    if client.ping():
                        return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                last = exc
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT}s: {last!r}")


PORT_ATTEMPTS = 5


class PortTaken(RuntimeError):
    """redis-server could not bind its port: another process took it first."""


# What a CA and a server certificate need under strict X.509 verification (OpenSSL's
# X509_STRICT: Python 3.13's default, applied by the app on every Python): `openssl req
# -x509` flags, and lines of the extension file `openssl x509 -req -extfile` reads.
CA_EXTENSIONS = (
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    "-addext", "subjectKeyIdentifier=hash",
)  # fmt: skip
LEAF_EXTENSIONS = "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"


def make_certificates(directory: Path) -> None:
    """A CA and a server certificate (SAN 127.0.0.1, localhost) signed by it, via openssl:
    ``ca.crt``/``ca.key`` and ``server.crt``/``server.key`` in ``directory``. Both carry the
    extensions strict X.509 verification requires (the client verifies strictly on every
    Python, as 3.13 does by default): key usage on the CA, key identifiers on both."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=guard-proxy test CA", *CA_EXTENSIONS)  # fmt: skip
    run("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "san.cnf").write_text(
        f"subjectAltName=IP:127.0.0.1,DNS:localhost\n{LEAF_EXTENSIONS}"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.cnf")  # fmt: skip


class SentinelServer(RedisServer):
    """A Redis Sentinel (``redis-server --sentinel``) watching one primary.

    **Parameters:**

    * **primary** - the :class:`RedisServer` to monitor; its password becomes ``auth-pass``.
    * **service** - the monitored name (``sentinel_service`` in the app's settings).
    * **password** - the Sentinel's own ``requirepass`` (random by default).
    * **down_after_ms**, **failover_timeout_ms** - how fast the Sentinel acts.
    """

    def __init__(
        self,
        primary: RedisServer,
        *,
        service: str = "mymaster",
        quorum: int = 1,
        down_after_ms: int = 400,
        failover_timeout_ms: int = 2000,
        password: str | None = "",
        port: int | None = None,
    ) -> None:
        super().__init__(password=password, port=port)
        self.primary = primary
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def _mode_args(self) -> list[str]:
        return ["--sentinel"]

    def _config_lines(self) -> list[str]:
        name = self.service
        lines = [
            f"sentinel monitor {name} {self.primary.host} {self.primary.port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.primary.password:
            lines.append(f"sentinel auth-pass {name} {self.primary.password}")
        return lines

    def primary_address(self) -> tuple[str, int] | None:
        """What this Sentinel currently names as the primary."""
        with self.client() as client:
            answer = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        if not answer:
            return None
        return str(answer[0]), int(answer[1])

    def settings(self, **overrides: Any) -> Any:
        """``RedisSettings`` that find the primary through this Sentinel."""
        values: dict[str, Any] = {
            "sentinels": (self.address,),
            "sentinel_service": self.service,
            "sentinel_password": self.password or "",
            "password": self.primary.password or "",
        }
        values.update(overrides)
        return self.primary.settings(**values)


def replica_of(primary: RedisServer, **kwargs: Any) -> RedisServer:
    """A :class:`RedisServer` (not started) replicating ``primary``, same password."""
    extra = [f"replicaof {primary.host} {primary.port}"]
    if primary.password:
        extra.append(f"masterauth {primary.password}")
    extra.extend(kwargs.pop("extra_config", ()))
    return RedisServer(password=primary.password, extra_config=extra, **kwargs)
