"""The ``guard-proxy`` command line: the composition root that wires config, guard, cache and app.

Each subcommand lives in its own module exposing ``add_parser(subparsers)``; modules are
imported when the command line is built, but heavy imports stay inside their ``run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guard_proxy.config import Settings

from guard_proxy import __version__

_COMMANDS = (
    "guard_proxy.cli.serve",
    "guard_proxy.cli.check_config",
    "guard_proxy.cli.status",
    "guard_proxy.cli.check_redis",
    "guard_proxy.cli.cache",
    "guard_proxy.cli.keys",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="guard-proxy",
        description="A guard proxy for Ollama with a Redis-backed verdict cache.",
    )
    parser.add_argument("--version", action="version", version=f"guard-proxy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMANDS:  # every one ships with the package: a missing one is a bug
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config PATH``, defaulting to ``$GUARD_PROXY_CONFIG``."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="YAML configuration file (default: $GUARD_PROXY_CONFIG; env overrides it)",
    )


def load_or_report(config: str | None) -> Settings | None:
    """Load the settings, or print one ``error: key: problem`` line per problem and return None."""
    import sys

    from guard_proxy.config import load_settings
    from guard_proxy.exceptions import ConfigError

    try:
        return load_settings(config)
    except ConfigError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return None
