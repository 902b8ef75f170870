"""Per-chunk CPU of the guarded stream relay, two source trees side by side in one process.

    python bench/stream_hotpath.py BASE_SRC NEW_SRC [--chunks 500] [--per-read 3] [--rounds 7]

Each tree's ``guard_proxy`` is imported in turn (under its own ``sys.modules`` snapshot) and
drives the same upstream bytes through ``Releaser`` + the framing's relay with the default
output scanners: an NDJSON ``/api/chat`` stream and an SSE ``/v1/chat/completions`` stream
of ``--chunks`` pieces, ``--per-read`` pieces (3) per upstream read. Rounds alternate
between the trees (and which goes first); reported are the best round of each (µs of CPU
per chunk), their ratio new/base, and the median of the rounds' ratios. The relay API
changed between the trees this was written for (issue 15), so both spellings are known.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

WORDS = ["The", " sky", " is", " blue", " because", " air", " scatters", " short", " light", "."]


def _load(src: str) -> dict[str, Any]:
    """Import ``guard_proxy`` from the source tree ``src``, not the installed one.

    A ``sys.path`` edit on purpose (as in metrics_hotpath.py): this script compares two versions of
    the app (a base commit's tree and this one) in one process, so each must be imported
    from its own directory, its modules dropped again before the other tree is loaded.
    """
    for name in [m for m in sys.modules if m == "guard_proxy" or m.startswith("guard_proxy.")]:
        del sys.modules[name]
    sys.path.insert(0, src)
    try:
        mods = {
            name: importlib.import_module(f"guard_proxy.{name}")
            for name in (
                "config",
                "guard",
                "proxy.framing",
                "proxy.release",
                "proxy.metrics",
                "proxy.shapes",
                "proxy.verdicts",
            )
        }
    finally:
        sys.path.remove(src)
    assert mods["guard"].__file__ is not None and mods["guard"].__file__.startswith(src)
    return mods


class _NoCache:
    def key(self, direction: str, config_hash: str, text: str) -> str:
        return text

    async def get_or_compute(self, key: str, compute: Any, codec: Any = None, /) -> Any:
        return await compute(), "disabled"


def _streams(chunks: int, per_read: int) -> dict[str, list[bytes]]:
    words = [WORDS[i % len(WORDS)] for i in range(chunks)]
    chat = [
        orjson.dumps({"model": "m", "message": {"role": "assistant", "content": w}, "done": False})
        + b"\n"
        for w in words
    ] + [orjson.dumps({"model": "m", "message": {"content": ""}, "done": True}) + b"\n"]
    sse = [
        b"data: "
        + orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": w}}]})
        + b"\n\n"
        for w in words
    ] + [b"data: [DONE]\n\n"]
    reads = {}
    for name, lines in (("ndjson", chat), ("sse", sse)):
        reads[name] = [b"".join(lines[i : i + per_read]) for i in range(0, len(lines), per_read)]
    return reads


def _runner(mods: dict[str, Any], fmt: str) -> Callable[[list[bytes]], Any]:
    config, guard_mod = mods["config"], mods["guard"]
    framing, release = mods["proxy.framing"], mods["proxy.release"]
    guard = guard_mod.Guard.from_settings(config.GuardSettings())
    verdicts = mods["proxy.verdicts"].VerdictService(
        guard, _NoCache(), mods["proxy.metrics"].Metrics(), "closed"
    )
    out = guard_mod.Direction.OUTPUT
    path = "/api/chat" if fmt == "ndjson" else "/v1/chat/completions"
    kind = "chat" if fmt == "ndjson" else "openai_chat"

    def build() -> tuple[Any, Any]:
        if hasattr(framing, "relay_stream"):  # issue 15: the framing owns its encoder
            shapes = mods["proxy.shapes"]
            fr = framing.Ndjson() if fmt == "ndjson" else framing.Sse()
            shape = shapes.SHAPES[shapes.Kind(kind)]
            rel = release.Releaser(guard.stream(out), shape, fr, verdicts)
            return rel, framing.relay_stream
        enc = framing.ndjson_encode if fmt == "ndjson" else framing.sse_encode
        rel = release.Releaser(guard.stream(out), kind, enc, verdicts)
        return rel, framing.relay_ndjson if fmt == "ndjson" else framing.relay_sse

    async def sink(message: dict[str, Any]) -> None:
        return None

    async def run(reads: list[bytes]) -> Any:
        async def chunks() -> AsyncIterator[bytes]:
            for r in reads:
                yield r

        rel, relay = build()
        return await relay(sink, chunks(), rel, path)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--per-read", type=int, default=3, help="pieces per upstream read")
    parser.add_argument("--streams", type=int, default=40, help="streams per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    reads = _streams(args.chunks, args.per_read)
    trees = {"base": _load(args.base), "new": _load(args.new)}
    loop = asyncio.new_event_loop()
    for fmt in ("ndjson", "sse"):
        runners = {name: _runner(mods, fmt) for name, mods in trees.items()}
        for run in runners.values():  # warm up; both must relay the stream to its end
            outcome = loop.run_until_complete(run(reads[fmt]))
            assert outcome.blocked is None and not outcome.failed
        best = {name: float("inf") for name in runners}
        ratios = []
        for round_ in range(args.rounds):
            took = {}
            order = list(runners) if round_ % 2 == 0 else list(runners)[::-1]
            for name in order:
                start = time.process_time()
                for _ in range(args.streams):
                    loop.run_until_complete(runners[name](reads[fmt]))
                took[name] = (time.process_time() - start) * 1e6 / (args.streams * args.chunks)
                best[name] = min(best[name], took[name])
            ratios.append(took["new"] / took["base"])
        print(
            f"{fmt:6}  base {best['base']:6.2f} µs/chunk  new {best['new']:6.2f} µs/chunk"
            f"  new/base best {best['new'] / best['base']:.3f}"
            f"  median of rounds {statistics.median(ratios):.3f}"
        )
    loop.run_until_complete(loop.shutdown_asyncgens())


if __name__ == "__main__":
    main()
