"""``guard-proxy keys``: the client keys of the keys file, their limits and current usage.

Usage is read from Redis (the shared counters every proxy writes: requests this minute,
tokens this minute and day, streams open). While Redis is away each proxy counts in its own
process and only its ``/metrics`` shows it; the command then says the usage is unknown.
Never prints a key or a hash, only names.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from guard_proxy.cli import add_config_argument, load_or_report

_LIMITS = (
    ("requests_per_minute", "requests_minute", "req/min"),
    ("tokens_per_minute", "tokens_minute", "tok/min"),
    ("tokens_per_day", "tokens_day", "tok/day"),
    ("concurrent_streams", "streams", "streams"),
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="list the client keys with their limits and current usage",
        description="List the client keys of access.keys.file (names only) with their "
        "limits and the usage counted in Redis for the current windows.",
    )
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--check",
        metavar="FILE",
        help="only validate the keys file FILE (exit 0 when valid, 1 with the problems)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from guard_proxy.keys.store import KeysFileError, load_keys_file

    if args.check:
        try:
            checked = load_keys_file(args.check)
        except KeysFileError as exc:
            for where, what in exc.problems:
                print(f"error: {where}: {what}", file=sys.stderr)
            return 1
        print(f"keys file OK: {len(checked)} keys ({', '.join(sorted(checked.by_name))})")
        return 0
    settings = load_or_report(args.config)
    if settings is None:
        return 1
    keys = settings.access.keys
    if not keys.file:
        print("error: access.keys.file is not set: there are no client keys", file=sys.stderr)
        return 1
    try:
        table = load_keys_file(keys.file)
    except KeysFileError as exc:
        print(f"error: access.keys.file: {exc}", file=sys.stderr)
        return 1
    names = sorted(table.by_name)
    usage, problem = asyncio.run(_read_usage(settings, names))
    rows: list[dict[str, Any]] = []
    for name in names:
        limits = table.by_name[name].limits
        used = usage.get(name)
        rows.append(
            {
                "name": name,
                "limits": {field: getattr(limits, field) or None for field, _, _ in _LIMITS},
                "usage": None
                if used is None
                else {field: getattr(used, attr) for field, attr, _ in _LIMITS},
            }
        )
    if args.json:
        print(json.dumps({"enabled": keys.enabled, "usage_error": problem, "keys": rows}))
        return 0
    state = "on" if keys.enabled else "OFF (access.keys.enabled is false)"
    print(f"client keys: {len(rows)} in {keys.file}; checking {state}")
    if problem:
        print(f"usage unknown: {problem}")
    header = ["name"] + [label for _, _, label in _LIMITS]
    lines = [header]
    for row in rows:
        cells: list[str] = [row["name"]]
        for field, _, _ in _LIMITS:
            limit = row["limits"][field]
            used = "?" if row["usage"] is None else str(row["usage"][field])
            cells.append(f"{used}/{limit if limit else '-'}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    return 0


async def _read_usage(settings: Any, names: list[str]) -> tuple[dict[str, Any], str | None]:
    from guard_proxy.cache.redis_client import redis_secrets, scrub
    from guard_proxy.exceptions import CacheBackendError
    from guard_proxy.keys.limits import redis_keys
    from guard_proxy.keys.redis_scripts import LimitsBackend

    if not settings.redis.enabled:
        return {}, "redis.enabled is false (limits are counted per proxy)"
    backend = LimitsBackend(settings.redis)
    try:
        usage = {}
        for name in names:
            usage[name] = await backend.read_usage(redis_keys(settings.access.keys.prefix, name))
        return usage, None
    except CacheBackendError as exc:
        return {}, f"redis at {backend.address}: {scrub(str(exc), redis_secrets(settings.redis))}"
    finally:
        await backend.aclose()
