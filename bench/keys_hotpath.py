"""What client keys and their limits add to one request, in one process, side by side.

Times interleaved rounds of one complete request through four stacks over the same trivial
ASGI endpoint (a complete ``/api/generate`` answer with Ollama's token counts):

* ``bare`` - the endpoint alone (the proxy with ``access.keys.enabled: false``);
* ``keys, no limits`` - key check (header parse, SHA-256, lookup) and the admission script
  against a real ``redis-server`` (every request is counted, none limited);
* ``keys + redis`` - the same with all four limits set: admission script (requests window,
  token windows, stream lease) before, token and lease script after;
* ``keys + fallback`` - all four limits, Redis down (breaker open): counted in the process;
* ``(one Redis PING)`` - a yardstick: one round trip to the same Redis through the same
  client, in the same minute.

The endpoint and the ASGI plumbing are the same in every stack, so the differences are the
layer's own cost. Prints the best and median round (µs per request) and the added time
over ``bare``, twice: until the answer is complete (what a client waits), and including
the usage update that runs after it (the layer's work per request). Redis is loopback,
password-protected, on this host. Run from the repository root::

    .venv/bin/python bench/keys_hotpath.py
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from guard_proxy.config.settings import KeysSettings, RedisSettings
from guard_proxy.keys.limits import KeyLimits
from guard_proxy.keys.middleware import KeysMiddleware
from guard_proxy.keys.store import KeyStore
from guard_proxy.keys.usage import KeyUsage
from guard_proxy_testing.net import free_port
from guard_proxy_testing.redis_server import RedisServer

KEY = "gpk-bench-" + "x" * 40
BODY = (
    b'{"model":"llama3.2","created_at":"2026-01-01T00:00:00Z","response":"hello there",'
    b'"done":true,"done_reason":"stop","total_duration":1,"prompt_eval_count":12,'
    b'"eval_count":3}'
)
LIMITS = {
    "requests_per_minute": 10**9,
    "concurrent_streams": 10**6,
    "tokens_per_minute": 10**12,
    "tokens_per_day": 10**12,
}
Request = Callable[[], Awaitable[None]]


async def endpoint(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def request(app: Any) -> Request:
    headers = [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        return None

    async def one() -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/generate",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
        }
        await app(scope, receive, send)

    return one


def keys_file(directory: Path, limits: dict[str, int]) -> str:
    path = directory / f"keys-{len(limits)}.yml"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    import yaml

    path.write_text(
        yaml.safe_dump({"keys": [{"name": "bench", "sha256": digest, "limits": limits}]})
    )
    return str(path)


async def nothing() -> None:
    return None


def layer(path: str, limits: KeyLimits) -> KeysMiddleware:
    return KeysMiddleware(
        endpoint,
        store=KeyStore(path, 60.0),
        limits=limits,
        usage=KeyUsage(),
        header="X-API-Key",
        failed_per_minute=20,
        exempt=(),
        generation=("/api/generate",),
    )


async def per_request(
    fn: Request, n: int, drain: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """Mean time until the answer is complete, and mean time including the work left after
    it (the usage update to Redis, which runs in a task of its own)."""
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    answered = time.perf_counter()
    await drain()
    done = time.perf_counter()
    return (answered - start) / n, (done - start) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keys-bench-"))
    unlimited, limited = keys_file(work, {}), keys_file(work, LIMITS)
    settings = KeysSettings(enabled=True, prefix="bench-keys:")
    with RedisServer() as server:
        # A longer socket timeout than the deployed 0.1 s: on a loaded host a slow reply
        # would otherwise flip the stack to its fallback mid-run (counted and printed below).
        redis = RedisSettings(
            host=server.host,
            port=server.port,
            password=server.password or "",
            socket_timeout=1.0,
        )
        shared = KeyLimits(settings, redis, workers=1, use_redis=True)
        shared_unlimited = KeyLimits(settings, redis, workers=1, use_redis=True)
        down = KeyLimits(
            settings, RedisSettings(host="127.0.0.1", port=free_port()), workers=1, use_redis=True
        )
        for limits in (shared, shared_unlimited, down):
            await limits.start()
        assert shared.shared and shared_unlimited.shared and not down.shared
        layers = {
            "keys, no limits": layer(unlimited, shared_unlimited),
            "keys + redis": layer(limited, shared),
            "keys + fallback": layer(limited, down),
        }

        async def ping() -> None:
            await shared.supervisor.ping()

        stacks: dict[str, tuple[Request, Callable[[], Awaitable[None]]]] = {
            "bare": (request(endpoint), nothing),
            **{name: (request(app), app.drain) for name, app in layers.items()},
            "(one Redis PING)": (ping, nothing),
        }
        for fn, drain in stacks.values():  # warm up (script load, first connections)
            await per_request(fn, 200, drain)
        latency: dict[str, list[float]] = {name: [] for name in stacks}
        cost: dict[str, list[float]] = {name: [] for name in stacks}
        for _ in range(args.rounds):
            for name, (fn, drain) in stacks.items():
                answered, done = await per_request(fn, args.requests, drain)
                latency[name].append(answered)
                cost[name].append(done)
        fell_back = {
            "keys, no limits": shared_unlimited.fallbacks,
            "keys + redis": shared.fallbacks,
        }
        for limits in (shared, shared_unlimited, down):
            await limits.aclose()
    print(f"{args.rounds} rounds x {args.requests} requests, one process, Redis on loopback")
    for name, count in fell_back.items():
        if count:
            print(f"warning: {name}: {count} requests counted in the process (Redis slow)")
    for title, times in (
        ("until the answer is complete (what the client waits)", latency),
        ("including the usage update after it (work per request)", cost),
    ):
        bare_best, bare_median = min(times["bare"]), statistics.median(times["bare"])
        print(f"\n{title}")
        print(
            f"{'stack':<18} {'best us':>9} {'median us':>10} {'added best':>11} {'added med':>10}"
        )
        for name, values in times.items():
            best, median = min(values), statistics.median(values)
            print(
                f"{name:<18} {best * 1e6:9.1f} {median * 1e6:10.1f} "
                f"{(best - bare_best) * 1e6:11.1f} {(median - bare_median) * 1e6:10.1f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
