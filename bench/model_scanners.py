"""Model scanners: in the event loop vs in the model threads, with a cold and a warm cache.

Usage: ``python bench/model_scanners.py [--seconds 1.5] [--output FILE]`` (or
``make -C bench models``). For each scanner (the GIL-releasing stand-in at 5, 20 and 50 ms per
call, and the tiny ONNX model of ``guard_proxy_testing.tiny_model``) it starts one proxy per
mode: ``inline`` (the scanner declares ``inline = True``: called in the event loop, as every
plug-in was before issue 23), ``threads=2`` and ``threads=8`` (``guard.model_threads``). Each
proxy gets chat requests at concurrency 1, 8 and 32 for ``--seconds`` per cell:

* ``cold``: every message is new (a system prompt and one to three user turns, all unique):
  every text is a cache miss, 2-4 scans per request.
* ``warm``: conversations as clients send them: one of four system prompts, the earlier turns
  of the conversation again, and one new turn: only the new turn misses (one scan), plus one
  request in five a retry of an earlier request (no scan).

While a cell runs, a probe asks ``GET /health`` every 10 ms: its p50/p99 is what every other
request on that worker (cached ones too) waits for the loop. Memory cache, one worker, the
bench's fake upstream. Prints a Markdown table and writes the raw figures to ``--output``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

import procs
import stats
from procs import BENCH, RUN_DIR

STANDIN = "guard_proxy_testing.standin_scanner:factory"
SCANNERS: dict[str, dict[str, Any]] = {
    "stand-in 5 ms": {"path": STANDIN, "options": {"cost": 0.005}},
    "stand-in 20 ms": {"path": STANDIN, "options": {"cost": 0.020}},
    "stand-in 50 ms": {"path": STANDIN, "options": {"cost": 0.050}},
    "tiny ONNX": {"path": "inline_onnx:factory", "options": {}},
}
MODES: dict[str, dict[str, Any]] = {
    "inline": {"inline": True},
    "threads=2": {"model_threads": 2},
    "threads=8": {"model_threads": 8},
}
CONCURRENCY = (1, 8, 32)
SYSTEM = [f"You are assistant number {i}. Answer briefly and politely." for i in range(4)]


def config(scanner: dict[str, Any], mode: dict[str, Any], model_dir: Path) -> Path:
    """The proxy's YAML: the bench's guard plus the plug-in on input, in ``mode``."""
    options = dict(scanner["options"])
    if scanner["path"].startswith("inline_onnx"):
        options["model_dir"] = str(model_dir)
    if mode.get("inline"):
        options["inline"] = True
    base = (BENCH / "guard.yaml").read_text()
    plugin = {"name": "model", "path": scanner["path"], "directions": ["input"]}
    plugin["options"] = options
    # A queue that never sheds: this compares where the scans run, not load shedding.
    extra = {"plugins": [plugin], "model_threads": mode.get("model_threads", 1), "scan_queue": 4096}
    path = RUN_DIR / "models-guard.yaml"
    lines = [base.rstrip(), *(f"  {k}: {json.dumps(v)}" for k, v in extra.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class Workload:
    """Chat bodies for one cell: ``cold`` (all new) or ``warm`` (conversations, retries)."""

    def __init__(self, cell: str, warm: bool, seed: int) -> None:
        self.cell = cell
        self.warm = warm
        self.random = random.Random(seed)
        self.counter = itertools.count()
        self.sent: list[dict[str, Any]] = []

    def body(self, worker: int) -> dict[str, Any]:
        n = next(self.counter)
        if self.warm and self.sent and self.random.random() < 0.2:
            return self.random.choice(self.sent)  # a retry: every text cached
        if self.warm:
            conversation, turn = divmod(n, 3)  # three new turns per conversation
            system = SYSTEM[conversation % len(SYSTEM)]
            turns = [f"{self.cell} c{worker}.{conversation} turn {t}" for t in range(turn + 1)]
        else:
            system = f"{self.cell} system prompt {n}"
            turns = [f"{self.cell} message {n}.{t}" for t in range(1 + n % 3)]
        messages = [{"role": "system", "content": system}]
        messages += [{"role": "user", "content": f"{t}: tell me about cats"} for t in turns]
        body = {"model": "bench", "messages": messages, "stream": False}
        if self.warm:
            self.sent.append(body)
        return body


async def cell(url: str, concurrency: int, seconds: float, workload: Workload) -> dict[str, Any]:
    """``concurrency`` clients flat out for ``seconds``, plus the /health probe."""
    latencies: list[int] = []
    health: list[int] = []
    statuses: dict[int, int] = {}
    end = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency + 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(worker: int) -> None:
            while time.perf_counter() < end:
                start = time.perf_counter_ns()
                async with session.post(url + "/api/chat", json=workload.body(worker)) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                latencies.append((time.perf_counter_ns() - start) // 1000)

        async def probe() -> None:
            while time.perf_counter() < end:
                start = time.perf_counter_ns()
                async with session.get(url + "/health") as r:
                    await r.read()
                health.append((time.perf_counter_ns() - start) // 1000)
                await asyncio.sleep(0.01)

        began = time.perf_counter()
        await asyncio.gather(probe(), *(client(i) for i in range(concurrency)))
        busy = time.perf_counter() - began
    row = stats.summarize(latencies, busy)
    h = stats.summarize(health, busy)
    row.update(health_p50_ms=h["p50_ms"], health_p99_ms=h["p99_ms"])
    row["statuses"] = {str(k): v for k, v in sorted(statuses.items())}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--output", type=Path, default=RUN_DIR / "model-scanners.json")
    parser.add_argument("--scanners", default=",".join(SCANNERS))
    args = parser.parse_args()
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    from guard_proxy_testing import tiny_model

    model_dir = RUN_DIR / "tiny-model"
    tiny_model.build(model_dir)
    upstream, upstream_url = procs.start_upstream()
    results: list[dict[str, Any]] = []
    env = {"PYTHONPATH": str(BENCH)}  # the proxies load bench/inline_onnx.py as a plug-in
    try:
        for name in args.scanners.split(","):
            for mode_name, mode in MODES.items():
                path = config(SCANNERS[name], mode, model_dir)
                proc, url = procs.start_proxy(
                    "models", upstream_url, "memory", None, {**env, "GUARD_PROXY_CONFIG": str(path)}
                )
                try:
                    for warm in (False, True):
                        for c in CONCURRENCY:
                            label = f"{name}|{mode_name}|{'warm' if warm else 'cold'}|c{c}"
                            workload = Workload(label.replace("|", "-"), warm, seed=c)
                            row = asyncio.run(cell(url, c, args.seconds, workload))
                            row.update(scanner=name, mode=mode_name, cache=label.split("|")[2])
                            row["concurrency"] = c
                            results.append(row)
                            print(json.dumps(row), flush=True)
                finally:
                    proc.stop()
    finally:
        upstream.stop()
        procs.stop_all()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per scanner, cache and concurrency; the three modes side by side."""
    out = [
        "| scanner | cache | c | inline req/s | threads=2 req/s | threads=8 req/s "
        "| p50 / p99 ms inline | p50 / p99 ms threads=2 | p50 / p99 ms threads=8 "
        "| /health p50 ms inline / threads=2 | not 200 (inline, 2, 8) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    index = {(r["scanner"], r["mode"], r["cache"], r["concurrency"]): r for r in rows}
    keys = sorted({(r["scanner"], r["cache"], r["concurrency"]) for r in rows}, key=_order)
    for scanner, cache, c in keys:
        cells = [index.get((scanner, m, cache, c)) for m in MODES]
        rps = [f"{r['rps']:.0f}" if r else "-" for r in cells]
        lat = [f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f}" if r else "-" for r in cells]
        health = [f"{r['health_p50_ms']:.1f}" if r else "-" for r in cells[:2]]
        bad = [_not_ok(r) for r in cells]
        out.append(
            f"| {scanner} | {cache} | {c} | {' | '.join(rps)} | {' | '.join(lat)} "
            f"| {' / '.join(health)} | {', '.join(bad)} |"
        )
    return "\n".join(out)


def _not_ok(row: dict[str, Any] | None) -> str:
    """Answers other than 200 in a cell: ``0``, or ``count`` with the statuses."""
    if row is None:
        return "-"
    bad = {k: v for k, v in row["statuses"].items() if k != "200"}
    return " ".join(f"{v} x {k}" for k, v in bad.items()) or "0"


def _order(key: tuple[str, str, int]) -> tuple[int, str, int]:
    return (list(SCANNERS).index(key[0]), key[1], key[2])


if __name__ == "__main__":
    main()
