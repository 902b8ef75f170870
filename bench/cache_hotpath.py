"""The verdict cache's hit path, this tree against another revision, in one process.

Loads ``cache/facade.py`` and ``proxy/verdicts.py`` of ``--base`` (default ``main``) from git
as modules beside the current ones, warms one key in memory in each, and times interleaved
rounds of:

* ``cache`` - ``GuardCache.get_or_compute`` of a memory hit (JSON objects);
* ``verdict`` - ``VerdictService._one`` of a memory hit: cache lookup plus the verdict codec,
  what a guarded request pays per cached text.

Prints the best and the median round of each (time per call) and the ratios new/base (below
1: this tree is faster). Ratios only: absolute numbers depend on the host; on a shared host
the best round is the steadier figure, and ``--base HEAD`` (the same code on both sides)
shows the noise. Run from the repository root with
the app importable from this tree, e.g.
``PYTHONPATH=app/src python bench/cache_hotpath.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

from guard_proxy.cache import GuardCache
from guard_proxy.config.settings import CacheSettings, GuardSettings, RedisSettings
from guard_proxy.guard import Direction, Guard
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.verdicts import VerdictService

FACADE = "app/src/guard_proxy/cache/facade.py"
VERDICTS = "app/src/guard_proxy/proxy/verdicts.py"


def load(rev: str, path: str, name: str) -> types.ModuleType:
    """The module at ``rev:path`` under the name ``name`` (its imports resolve to this tree)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{rev}:{path}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


async def per_call(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - start) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()

    old_facade = load(args.base, FACADE, "base_facade")
    old_verdicts = load(args.base, VERDICTS, "base_verdicts")
    settings = CacheSettings(backend="memory")
    redis = RedisSettings(enabled=False)
    new_cache, old_cache = GuardCache(settings, redis), old_facade.GuardCache(settings, redis)
    guard = Guard.from_settings(GuardSettings())
    new_service = VerdictService(guard, new_cache, Metrics(), "closed")
    old_service = old_verdicts.VerdictService(guard, old_cache, Metrics(), "closed")
    text = "What is the capital of France? " * 8
    direction = Direction.INPUT
    plain = {"allowed": True, "findings": []}

    async def compute() -> dict[str, Any]:
        return dict(plain)

    for cache in (new_cache, old_cache):
        await cache.start()
        await cache.get_or_compute(cache.key("input", "cfg", "x"), compute)
    for service in (new_service, old_service):
        verdict, status = await service._one(direction, text)
        assert verdict is not None and status == "miss", status
        assert (await service._one(direction, text))[1] == "hit"
    new_key, old_key = new_cache.key("input", "cfg", "x"), old_cache.key("input", "cfg", "x")

    cases: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
        "cache": (
            lambda: new_cache.get_or_compute(new_key, compute),
            lambda: old_cache.get_or_compute(old_key, compute),
        ),
        "verdict": (
            lambda: new_service._one(direction, text),
            lambda: old_service._one(direction, text),
        ),
    }
    for name, (new_fn, old_fn) in cases.items():
        new_times: list[float] = []
        old_times: list[float] = []
        for _ in range(args.rounds):  # interleaved, so drift on a shared host hits both
            new_times.append(await per_call(new_fn, args.calls))
            old_times.append(await per_call(old_fn, args.calls))
        new_best, old_best = min(new_times), min(old_times)
        new_med, old_med = statistics.median(new_times), statistics.median(old_times)
        print(
            f"{name:8} best {args.base} {old_best * 1e6:6.2f} us, this tree "
            f"{new_best * 1e6:6.2f} us, ratio {new_best / old_best:.3f}; median ratio "
            f"{new_med / old_med:.3f}"
        )
    for cache in (new_cache, old_cache):
        await cache.aclose()


if __name__ == "__main__":
    asyncio.run(main())
