"""``guard-proxy serve``: load settings, build guard, cache and app, and run uvicorn.

Exit 2 on a configuration error (one line per problem on stderr) or a scanner that cannot
be loaded. After the socket listens, ``READY=1`` goes to ``$NOTIFY_SOCKET``, then a
``STATUS=`` line on every change of state and every few seconds; ``WATCHDOG=1`` every half
``$WATCHDOG_USEC`` from the event loop; ``STOPPING=1`` at shutdown.
"""

from __future__ import annotations

import argparse
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

    from guard_proxy.exceptions import ScannerLoadError

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
    settings = dataclasses.replace(loaded, server=server)

    from guard_proxy.proxy.jsonlog import setup_logging

    setup_logging(settings.server.log_level)
    log = logging.getLogger("guard_proxy")
    try:
        from guard_proxy.guard import Guard

        guard = Guard.from_settings(settings.guard)
    except ScannerLoadError as exc:
        print(f"error: cannot load the guard: {exc}", file=sys.stderr)
        log.error("cannot load the guard", extra={"fields": {"error": str(exc)}})
        return 2

    import uvicorn

    from guard_proxy.cache import GuardCache
    from guard_proxy.proxy import create_app
    from guard_proxy.proxy.metrics import Metrics
    from guard_proxy.proxy.readiness import Readiness
    from guard_proxy.proxy.sdnotify import notify
    from guard_proxy.proxy.statusline import SystemdReporter
    from guard_proxy.proxy.upstream import Upstream

    cache = GuardCache.from_settings(settings)
    readiness = Readiness(
        Upstream(settings.ollama), cache, require_redis=settings.cache.require_redis
    )
    metrics = Metrics()
    app = create_app(settings, guard, cache, readiness=readiness, metrics=metrics)
    reporter = SystemdReporter(readiness, metrics)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            reporter.start_watchdog()  # before the lifespan: a start-up that hangs is caught too
            await super().startup(sockets=sockets)
            if self.started:
                log.info(
                    "listening",
                    extra={
                        "fields": {
                            "host": settings.server.host,
                            "port": settings.server.port,
                            "upstream": settings.ollama.url,
                            "guard": settings.guard.enabled,
                            "fail_mode": settings.guard.fail_mode,
                            "cache_backend": settings.cache.backend
                            if settings.cache.enabled
                            else "off",
                        }
                    },
                )
                notify("READY=1")
                reporter.start()

        def handle_exit(self, sig: int, frame: Any) -> None:
            # SIGTERM/SIGINT: from now on /ready answers 503 "draining".
            readiness.draining = True
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: Any = None) -> None:
            readiness.draining = True
            await reporter.stop()
            notify("STOPPING=1")
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=settings.server.log_level,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=10,
    )
    server_obj = _Server(config)
    server_obj.run()
    return 0 if server_obj.started else 1
