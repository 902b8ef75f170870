"""The stream guard's own CPU per chunk, in-process: prose fed in chunks of 4, 16 and 64
characters through the default output scanners. Prints one JSON object.

Run by ``run.py`` once as is and once with an older ``app/src`` first on ``PYTHONPATH``, so
both hold-back algorithms are measured on the same machine in the same minute. Thread CPU
time, best of 9 (the machine is shared).
"""

from __future__ import annotations

import json
import sys
import time

from guard_proxy.config.settings import GuardSettings
from guard_proxy.guard import Guard

from fake_upstream import PROSE

TEXT = PROSE * 8


def per_chunk_us(guard: Guard, size: int, rounds: int = 9) -> float:
    best = float("inf")
    chunks = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    for _ in range(rounds):
        stream = guard.stream("output")
        t0 = time.thread_time_ns()
        for chunk in chunks:
            stream.feed(chunk)
        stream.finish()
        best = min(best, (time.thread_time_ns() - t0) / len(chunks))
    return round(best / 1000, 2)


def main() -> int:
    guard = Guard.from_settings(GuardSettings())
    out = {str(size): per_chunk_us(guard, size) for size in (4, 16, 64)}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
