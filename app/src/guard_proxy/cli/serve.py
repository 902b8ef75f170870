"""``guard-proxy serve``: load settings, build guard, cache and app, and run uvicorn.

Exit 2 on a configuration error (one line per problem on stderr) or a scanner that cannot
be loaded, 1 when the socket cannot be had. The socket is systemd's when it passes one
(socket activation, :mod:`guard_proxy.proxy.listen`), else bound here. After it listens,
``READY=1`` goes to ``$NOTIFY_SOCKET``, then a ``STATUS=`` line on every change of state and
every few seconds; ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` from the event loop;
``STOPPING=1`` at shutdown. On SIGTERM the process drains: ``/ready`` answers 503 at once,
no new connection is accepted, and the requests in flight run on for up to
``server.drain_timeout``; what still runs then is ended in its own format
(:mod:`guard_proxy.proxy.drain`).

With ``server.tls_cert_file`` and ``server.tls_key_file`` the listener speaks HTTPS only
(whichever way the socket came, in every worker). Both files are read and checked to be a
matching certificate and key before the socket is touched: a file that cannot be read, or
a pair that does not load, is a configuration error (exit 2) naming the key.

With ``server.workers`` > 1 this process is the supervisor of that many workers serving
the one socket (:mod:`guard_proxy.cli.supervisor`); it loads no scanner or model: each
worker loads the guard after the fork (:func:`load_guard`; a failure there exits the worker
with 2, which stops the service with 2) and runs :func:`serve_one`.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from guard_proxy.cli import add_config_argument, load_or_report


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the proxy",
        description="Run the guard proxy in front of Ollama (config: YAML + environment).",
    )
    add_config_argument(parser)
    parser.add_argument("--host", default=None, help="listen address (overrides server.host)")
    parser.add_argument(
        "--port", type=int, default=None, help="listen port (overrides server.port)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import logging
    import os

    loaded = load_or_report(args.config)
    if loaded is None:
        return 2
    server = loaded.server
    if args.host is not None:
        server = dataclasses.replace(server, host=args.host)
    if args.port is not None:
        if not 0 < args.port < 65536:
            print(f"error: --port must be 1-65535, got {args.port}", file=sys.stderr)
            return 2
        server = dataclasses.replace(server, port=args.port)
    settings = loaded.model_copy(update={"server": server})
    # Before anything imports prometheus_client: its multiprocess mode is chosen on import.
    metrics_dir = shared_metrics_dir() if settings.server.workers > 1 else None
    if metrics_dir is None:  # one process: its own registry, nothing shared
        os.environ.pop(MULTIPROC_ENV, None)

    tls_problems = check_tls_files(settings.server)
    if tls_problems:
        for line in tls_problems:
            print(f"error: {line}", file=sys.stderr)
        return 2

    from guard_proxy.proxy.jsonlog import setup_logging

    setup_logging(settings.server.log_level)
    log = logging.getLogger("guard_proxy")
    guard: Any = None
    if settings.server.workers == 1:  # else each worker loads it after the fork
        guard = load_guard(settings)
        if guard is None:
            return 2

    from guard_proxy.proxy.listen import listening_socket

    where = f"{settings.server.host}:{settings.server.port}"
    try:
        sock, source = listening_socket(settings.server.host, settings.server.port)
    except (OSError, ValueError) as exc:
        print(f"error: cannot listen on {where}: {exc}", file=sys.stderr)
        log.error("cannot listen", extra={"fields": {"address": where, "error": str(exc)}})
        return 1
    if settings.server.workers > 1:
        from guard_proxy.cli.supervisor import CONFIG_ERROR, Supervisor

        def worker() -> int:
            loaded = load_guard(settings)
            return CONFIG_ERROR if loaded is None else serve_one(settings, loaded, sock, source)

        assert metrics_dir is not None
        return Supervisor(settings.server.workers, sock, source, worker, metrics_dir).run()
    return serve_one(settings, guard, sock, source)


def load_guard(settings: Any) -> Any:
    """The guard with every scanner and model loaded, or ``None`` once the reason is said
    (stderr and log). Never in a supervisor: a model may start threads (ONNX Runtime does),
    and a process forked from one that has them inherits their locks but not the threads.
    """
    import logging

    from guard_proxy.exceptions import ScannerLoadError
    from guard_proxy.guard import Guard

    try:
        return Guard.from_settings(settings.guard)
    except ScannerLoadError as exc:
        print(f"error: cannot load the guard: {exc}", file=sys.stderr)
        logging.getLogger("guard_proxy").error(
            "cannot load the guard", extra={"fields": {"error": str(exc)}}
        )
        return None


def shared_metrics_dir(environ: dict[str, str] | None = None) -> str:
    """A new, empty, private directory for the workers' metrics, named in
    ``$PROMETHEUS_MULTIPROC_DIR`` (for the workers to inherit).

    Under the unit's ``$RUNTIME_DIRECTORY`` (``/run/guard-proxy``, emptied by systemd when
    the service stops) as ``metrics``, else a temporary directory; what a previous run left
    there is removed first, so the counters of this service instance start at zero.
    """
    import os
    import shutil
    import tempfile

    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        path = os.path.join(runtime, "metrics")
        shutil.rmtree(path, ignore_errors=True)
        os.mkdir(path, 0o700)
    else:
        path = tempfile.mkdtemp(prefix="guard-proxy-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable (also :data:`guard_proxy.proxy.metrics.MULTIPROC_ENV`; not
imported from there: importing the proxy imports prometheus_client, which must see it set)."""


def check_tls_files(server: Any) -> list[str]:
    """Problems with the listener's certificate and key (``server.tls_*``), one line each.

    Empty when TLS is off, or both files can be read and load as a certificate chain with
    its private key (as the workers will load them).
    """
    import ssl

    if not (server.tls_cert_file and server.tls_key_file):
        return []
    problems = []
    for name in ("tls_cert_file", "tls_key_file"):
        path = getattr(server, name)
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            problems.append(f"server.{name}: cannot read {path}: {exc.strerror or exc}")
    if problems:
        return problems
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
            server.tls_cert_file, server.tls_key_file
        )
    except (ssl.SSLError, ValueError) as exc:
        return [
            f"server.tls_cert_file, server.tls_key_file: not a PEM certificate and its "
            f"private key ({server.tls_cert_file}, {server.tls_key_file}): {exc}"
        ]
    return []


END_GRACE = 5.0
"""Seconds the requests cut at the drain deadline get to write their last frame."""


def serve_one(settings: Any, guard: Any, sock: socket.socket, source: str) -> int:
    """Serve ``sock`` in this process until SIGTERM/SIGINT, then drain; the exit code.

    ``source`` says where the socket came from (``systemd`` or ``bound``), for the log.
    A worker of a supervisor (``$GUARD_PROXY_WORKER_DIR`` set) also publishes its cache
    counters for the others to merge (:mod:`guard_proxy.proxy.workershare`) and refreshes
    its gauges in the shared metrics (:mod:`guard_proxy.proxy.metrics`).
    """
    import asyncio
    import logging

    import uvicorn

    from guard_proxy.cache import GuardCache
    from guard_proxy.proxy import create_app
    from guard_proxy.proxy.drain import InFlight
    from guard_proxy.proxy.graceful import GracefulServer
    from guard_proxy.proxy.metrics import Metrics
    from guard_proxy.proxy.readiness import Readiness
    from guard_proxy.proxy.sdnotify import notify
    from guard_proxy.proxy.statusline import SystemdReporter
    from guard_proxy.proxy.upstream import Upstream
    from guard_proxy.proxy.workershare import WorkerShare

    log = logging.getLogger("guard_proxy")
    cache = GuardCache.from_settings(settings)
    readiness = Readiness(
        Upstream(settings.ollama), cache, require_redis=settings.cache.require_redis
    )
    metrics = Metrics()
    inflight = InFlight()
    share = WorkerShare.from_env()
    app = create_app(
        settings, guard, cache, readiness=readiness, metrics=metrics, inflight=inflight, share=share
    )
    reporter = SystemdReporter(readiness, metrics)
    drain_timeout = settings.server.drain_timeout
    host, port = sock.getsockname()[:2]

    async def snapshot() -> dict[str, Any]:
        await metrics.refresh(cache, readiness)  # this worker's gauges, for any scrape
        return cache.counters().model_dump()

    class _Server(GracefulServer):
        async def startup(self, sockets: Any = None) -> None:
            reporter.start_watchdog()  # before the lifespan: a start-up that hangs is caught too
            await super().startup(sockets=sockets)
            if self.started:
                fields: dict[str, Any] = {
                    "host": host,
                    "port": port,
                    "socket": source,
                    "tls": bool(settings.server.tls_cert_file),
                    "upstream": settings.ollama.url,
                    "guard": settings.guard.enabled,
                    "fail_mode": settings.guard.fail_mode,
                    "cache_backend": settings.cache.backend if settings.cache.enabled else "off",
                    "drain_timeout": drain_timeout,
                }
                if share is not None:
                    fields["worker"] = share.worker
                    await share.publish_now(snapshot)  # the first scrape sees every worker
                    share.start(snapshot)
                log.info("listening", extra={"fields": fields})
                notify("READY=1")
                reporter.start()

        def handle_exit(self, sig: int, frame: Any) -> None:
            # SIGTERM/SIGINT: from now on /ready answers 503 "draining".
            readiness.draining = True
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: Any = None) -> None:
            readiness.draining = True
            log.info(
                "draining",
                extra={"fields": {"in_flight": inflight.count, "drain_timeout": drain_timeout}},
            )
            await reporter.stop()
            notify("STOPPING=1")
            deadline = asyncio.get_running_loop().call_later(drain_timeout, inflight.expire)
            try:
                # Stops accepting, lets just-accepted connections deliver their request,
                # closes idle keep-alive connections, waits for the rest (their responses
                # end with Connection: close), cancels stragglers last.
                await super().shutdown(sockets=sockets)
            finally:
                deadline.cancel()
                if share is not None:
                    await share.stop()

    config = uvicorn.Config(
        app,
        host=str(host),
        port=int(port),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=settings.server.log_level,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=int(drain_timeout + END_GRACE + 0.999),
        ssl_certfile=settings.server.tls_cert_file or None,
        ssl_keyfile=settings.server.tls_key_file or None,
    )
    server_obj = _Server(config)
    server_obj.run(sockets=[sock])
    return 0 if server_obj.started else 1
