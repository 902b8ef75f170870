"""A stand-in for a model scanner, loaded as a plug-in
(``guard_proxy_testing.standin_scanner:factory``).

Like ONNX Runtime or PyTorch inference it releases the GIL while it works (``time.sleep``).
Options: ``word`` (flags texts that contain it), ``cost`` (seconds per call), ``gate`` (a
path: each call waits until that file exists), ``state`` (a directory where it writes
``running`` and ``peak``: calls in progress now and at most, so a test in another process
sees whether calls overlapped), ``batch`` (also offer ``scan_batch``; each batch's size is
appended to ``state/batches``), ``inline`` (declare itself cheap: run on the event loop),
``load`` (seconds the factory takes, as a model takes to load).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guard_proxy.guard import Finding


class StandIn:
    window = 0

    def __init__(self, options: dict[str, Any]) -> None:
        self.name = "standin"
        self.word = str(options.get("word", "flagme"))
        self.cost = float(options.get("cost", 0.0))
        self.gate = Path(options["gate"]) if options.get("gate") else None
        self.state = Path(options["state"]) if options.get("state") else None
        self.inline = bool(options.get("inline", False))
        self._lock = threading.Lock()
        self._running = 0
        self._peak = 0
        if options.get("batch"):
            self.scan_batch = self._scan_batch

    def _write(self, name: str, value: str, append: bool = False) -> None:
        if self.state is None:
            return
        path = self.state / name
        if append:
            with path.open("a") as f:
                f.write(value + "\n")
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value)
        os.replace(tmp, path)

    def _enter(self) -> None:
        with self._lock:
            self._running += 1
            self._peak = max(self._peak, self._running)
            self._write("running", str(self._running))
            self._write("peak", str(self._peak))

    def _leave(self) -> None:
        with self._lock:
            self._running -= 1
            self._write("running", str(self._running))

    def _work(self) -> None:
        if self.gate is not None:
            while not self.gate.exists():
                time.sleep(0.005)
        if self.cost:
            time.sleep(self.cost)

    def scan(self, text: str) -> Finding | None:
        self._enter()
        try:
            self._work()
        finally:
            self._leave()
        return Finding(self.name, "flagged word") if self.word in text else None

    def _scan_batch(self, texts: Sequence[str]) -> list[Finding | None]:
        self._enter()
        try:
            with self._lock:
                self._write("batches", str(len(texts)), append=True)
            self._work()
        finally:
            self._leave()
        return [Finding(self.name, "flagged word") if self.word in t else None for t in texts]


def factory(options: dict[str, Any]) -> StandIn:
    time.sleep(float(options.get("load", 0.0)))  # a model that takes this long to load
    return StandIn(options)
