"""CPU of the metrics path, the hand-made renderer (base tree) against prometheus_client (new
tree), side by side in one process.

    python bench/metrics_hotpath.py BASE_SRC NEW_SRC [--requests 20000] [--rounds 7]

``BASE_SRC`` and ``NEW_SRC`` are two ``app/src`` directories (make the base one with
``git worktree add --detach /tmp/base <commit>``); each tree's ``proxy.metrics`` (and, for
the base, ``proxy.promtext``) is imported in turn under its own ``sys.modules`` snapshot.
Measured, best of ``--rounds`` (rounds alternate which tree goes first):

* **record**: one guarded streamed request's metrics (in flight up and down, the request,
  its stream timings, the input and output verdict waits, one scan), µs of CPU each;
* **render 1**: ``/metrics`` of one process holding the counts of ``--requests`` requests
  over 6 routes x 3 statuses (``render`` with the cache counters and readiness gauges), ms;
* **render 2w**: ``/metrics`` of two workers: base = this process's text merged with the
  other worker's snapshot text (``promtext.merge``; the snapshot file read not counted);
  new = ``MultiProcessCollector`` over both workers' files (prometheus_client's
  multiprocess mode, the other worker a forked child that recorded the same counts).

The new tree's record is measured both ways: one process (plain values) and a worker
(memory-mapped values, ``$PROMETHEUS_MULTIPROC_DIR`` set).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROUTES = ["/api/chat", "/api/generate", "/v1/chat/completions", "/api/tags", "/api/show", "/"]
STATUSES = [200, 400, 503]
STATS = {"hits": 10, "misses": 5, "sets": 5, "memory_hits": 10, "active_backend": "memory"}
STATE = {"ready": 1, "draining": 0, "upstream_up": 1, "redis_wanted": 0, "degraded": 0}


def _load(src: str, names: tuple[str, ...]) -> dict[str, Any]:
    """Import ``guard_proxy`` (``names`` of it) from the source tree ``src``, not the installed one.

    A ``sys.path`` edit on purpose (as in stream_hotpath.py): this script compares two versions of
    the app (a base commit's tree and this one) in one process, so each must be imported
    from its own directory, its modules dropped again before the other tree is loaded.
    """
    src = os.path.abspath(src)
    for name in [m for m in sys.modules if m == "guard_proxy" or m.startswith("guard_proxy.")]:
        del sys.modules[name]
    sys.path.insert(0, src)
    try:
        mods = {name: importlib.import_module(f"guard_proxy.{name}") for name in names}
    finally:
        sys.path.remove(src)
    for mod in mods.values():
        assert mod.__file__ is not None and mod.__file__.startswith(src)
    return mods


def record(metrics: Any) -> None:
    """One guarded, streamed request, as the middlewares and the verdict service count it."""
    metrics.in_flight += 1
    metrics.verdict("input", 0.0004)
    metrics.scan("input", 0.0003)
    metrics.verdict("output", 0.0002)
    metrics.in_flight -= 1
    metrics.request("/api/chat", "POST", 200, 0.8)
    metrics.stream("/api/chat", 0.05, 0.8)


def fill(metrics: Any, requests: int) -> None:
    for n in range(requests):
        route = ROUTES[n % len(ROUTES)]
        metrics.request(route, "POST", STATUSES[n % len(STATUSES)], 0.001 * (n % 500))
        if n % 3 == 0:
            metrics.stream(route, 0.01, 0.5)
        metrics.verdict("input", 0.0001 * (n % 50))
        metrics.scan("input", 0.0001 * (n % 30))
        if n % 50 == 0:
            metrics.block("input", ["ban_substrings"])


def cpu(fn: Callable[[], object], repeat: int) -> float:
    """Seconds of CPU per call of ``fn``."""
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("base_src")
    parser.add_argument("new_src")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--record", type=int, default=20000, help="record() calls per round")
    args = parser.parse_args()

    base = _load(args.base_src, ("proxy.metrics", "proxy.promtext"))
    # The new tree in a worker's mode: prometheus_client must see the directory on import.
    workdir = tempfile.mkdtemp(prefix="bench-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = workdir
    new = _load(args.new_src, ("proxy.metrics",))
    from prometheus_client import values

    multi_values = values.ValueClass
    plain_values = values.MutexValue

    def new_metrics(multi: bool) -> Any:
        if multi:
            return new["proxy.metrics"].Metrics(multiproc_dir=workdir)
        values.ValueClass = plain_values  # as a process that never saw the variable
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        try:
            return new["proxy.metrics"].Metrics()
        finally:
            values.ValueClass = multi_values
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = workdir

    old_one, old_other = base["proxy.metrics"].Metrics(), base["proxy.metrics"].Metrics()
    new_one, new_worker = new_metrics(False), new_metrics(True)
    for m in (old_one, old_other, new_one, new_worker):
        fill(m, args.requests)
    child = os.fork()
    if child == 0:  # the other worker: its own memory-mapped file, same counts
        try:
            values.ValueClass = multi_values
            fill(new["proxy.metrics"].Metrics(multiproc_dir=workdir), args.requests)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    merge = base["proxy.promtext"].merge
    other_text = old_other.render(STATS, STATE)

    cases: dict[str, Callable[[], object]] = {
        "record base": lambda: record(old_one),
        "record new (1 process)": lambda: record(new_one),
        "record new (worker)": lambda: record(new_worker),
        "render 1 base": lambda: old_one.render(STATS, STATE),
        "render 1 new": lambda: new_one.render(STATS, STATE),
        "render 2w base": lambda: merge({"0": old_one.render(STATS, STATE), "1": other_text}),
        "render 2w new": lambda: new_worker.render(STATS, STATE),
    }
    repeats = {name: args.record if name.startswith("record") else 30 for name in cases}
    best: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    try:
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                best[name].append(cpu(cases[name], repeats[name]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def show(name: str, unit: float, label: str) -> float:
        value = min(best[name]) * unit
        median = statistics.median(best[name]) * unit
        print(f"  {name:<24} {value:9.2f} {label}  (median {median:.2f})")
        return value

    print(f"metrics hot path, best of {args.rounds} rounds ({args.requests} requests counted)")
    rec = show("record base", 1e6, "µs")
    one = show("record new (1 process)", 1e6, "µs")
    worker = show("record new (worker)", 1e6, "µs")
    r1b = show("render 1 base", 1e3, "ms")
    r1n = show("render 1 new", 1e3, "ms")
    r2b = show("render 2w base", 1e3, "ms")
    r2n = show("render 2w new", 1e3, "ms")
    print(
        f"ratios new/base: record {one / rec:.2f} (1 process), {worker / rec:.2f} (worker); "
        f"render {r1n / r1b:.2f} (1 process), {r2n / r2b:.2f} (2 workers)"
    )


if __name__ == "__main__":
    main()
