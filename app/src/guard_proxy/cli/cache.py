"""``guard-proxy cache stats|clear``: inspect or empty a running instance's verdict cache.

``stats`` reads ``GET /cache/stats``; ``clear`` sends ``POST /cache/clear`` with the admin
token (``access.admin_token``, ``GUARD_PROXY_ADMIN_TOKEN`` or ``GUARD_PROXY_ADMIN_TOKEN_FILE``)
as a Bearer token; the instance deletes only keys under its prefix. Exit 0 on success,
1 on a refusal or error, 2 when the instance does not answer. The token is never printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from guard_proxy.cli._instance import (
    EXIT_DOWN,
    Unreachable,
    add_url_arguments,
    error_text,
    request,
    resolve_or_report,
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="show or clear a running instance's verdict cache",
        description="Show statistics of, or clear, the verdict cache of a running instance.",
    )
    actions = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    stats = actions.add_parser(
        "stats",
        help="show hits, misses, hit rate, backend, failovers and Redis memory",
        description="Print GET /cache/stats of a running instance.",
    )
    add_url_arguments(stats)
    stats.add_argument("--json", action="store_true", help="print the JSON document as is")
    stats.set_defaults(handler=run_stats)
    clear = actions.add_parser(
        "clear",
        help="delete every cached verdict (keys under the prefix, and memory entries)",
        description="POST /cache/clear with the admin token (access.admin_token, "
        "GUARD_PROXY_ADMIN_TOKEN or GUARD_PROXY_ADMIN_TOKEN_FILE).",
    )
    add_url_arguments(clear)
    clear.add_argument("--json", action="store_true", help="print the JSON answer as is")
    clear.set_defaults(handler=run_clear)


def run_stats(args: argparse.Namespace) -> int:
    import json

    resolved = resolve_or_report(args)
    if resolved is None:
        return EXIT_DOWN
    url, _ = resolved
    try:
        reply = request(f"{url}/cache/stats", timeout=args.timeout)
    except Unreachable as exc:
        print(f"error: guard-proxy at {url} is not answering: {exc}", file=sys.stderr)
        return EXIT_DOWN
    if reply.status != 200:
        print(
            f"error: GET {url}/cache/stats answered HTTP {reply.status}: {error_text(reply.body)}",
            file=sys.stderr,
        )
        return 1
    try:
        stats = reply.json()
    except ValueError:
        print(f"error: GET {url}/cache/stats did not answer JSON", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"cache stats of {url}")
    if not isinstance(stats, dict):
        print(f"  {stats}")
        return 0
    rows = list(_flatten(stats))
    width = max((len(key) for key, _ in rows), default=0)
    for key, value in rows:
        print(f"  {key:<{width}}  {_show(key, value)}")
    return 0


def _flatten(doc: dict[str, Any], prefix: str = "") -> Any:
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _show(key: str, value: Any) -> str:
    import json

    from guard_proxy.cli._format import human_bytes, when

    name = key.rsplit(".", 1)[-1]
    if value is None:
        return "-"
    if name in ("used_memory", "maxmemory"):
        return f"{value} ({human_bytes(value)})"
    if name == "hit_rate" and isinstance(value, int | float):
        return f"{value:.4f} ({value * 100:.1f} %)"
    if name.endswith("_at"):
        return when(value) or "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def run_clear(args: argparse.Namespace) -> int:
    import json

    resolved = resolve_or_report(args)
    if resolved is None:
        return EXIT_DOWN
    url, settings = resolved
    token = settings.access.admin_token if settings is not None else ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        reply = request(f"{url}/cache/clear", method="POST", timeout=args.timeout, headers=headers)
    except Unreachable as exc:
        print(f"error: guard-proxy at {url} is not answering: {exc}", file=sys.stderr)
        return EXIT_DOWN
    if reply.status in (401, 403):
        if reply.status == 403:
            why = f"the instance says: {error_text(reply.body)}"
        elif token:
            why = "the instance refused the configured admin token"
        else:
            why = "no admin token is configured here"
        print(
            f"error: cache clear not allowed (HTTP {reply.status}): {why}. The admin token "
            "comes from access.admin_token, GUARD_PROXY_ADMIN_TOKEN or "
            "GUARD_PROXY_ADMIN_TOKEN_FILE and must match the instance's.",
            file=sys.stderr,
        )
        return 1
    if reply.status >= 300:
        print(
            f"error: POST {url}/cache/clear answered HTTP {reply.status}: {error_text(reply.body)}",
            file=sys.stderr,
        )
        return 1
    try:
        answer = reply.json()
    except ValueError:
        answer = None
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"cache cleared on {url}" + _summary(answer))
    return 0


def _summary(answer: Any) -> str:
    """``: <n> cached verdicts deleted`` from the instance's ``ClearedBody``, else nothing."""
    from pydantic import ValidationError

    from guard_proxy.api_models import ClearedBody

    try:
        cleared = ClearedBody.model_validate(answer)
    except ValidationError:
        return ""
    return f": {cleared.cleared} cached verdicts deleted"
