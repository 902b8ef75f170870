"""``guard-proxy check-config``: validate the configuration, optionally print it redacted."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from guard_proxy.cli import add_config_argument, load_or_report


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-config",
        help="validate the configuration and exit 0 when it is valid",
        description="Validate the configuration (YAML + environment). Exit 0 and print a "
        "one-line summary when valid; otherwise print one line per problem and exit 1.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--print",
        dest="print_config",
        action="store_true",
        help="also print the effective configuration as YAML, secrets redacted",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from guard_proxy.cache.redis_client import redis_address
    from guard_proxy.config import redacted
    from guard_proxy.exceptions import ScannerLoadError

    settings = load_or_report(args.config)
    if settings is None:
        return 1
    try:
        from guard_proxy.guard import Guard

        Guard.from_settings(settings.guard)
    except ScannerLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(redacted(settings), sort_keys=False))
    cache = settings.cache
    backend = cache.backend if cache.enabled else "disabled"
    if cache.enabled and cache.backend != "memory" and settings.redis.enabled:
        backend += f" (redis {redis_address(settings.redis)})"
    keys = ""
    if settings.access.keys.enabled:
        from guard_proxy.keys.store import load_keys_file

        count = len(load_keys_file(settings.access.keys.file))  # validated by load_settings
        keys = f", client keys on ({count} in {settings.access.keys.file})"
    print(
        f"configuration OK: listen {settings.server.host}:{settings.server.port}, "
        f"upstream {settings.ollama.url}, guard "
        f"{'on' if settings.guard.enabled else 'OFF'} (fail_mode {settings.guard.fail_mode}), "
        f"cache {backend}{keys}"
    )
    return 0
