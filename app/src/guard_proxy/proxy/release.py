"""Release streamed pieces (NDJSON lines, SSE events) only as far as the stream guard allows.

Each piece's generated text is fed to the :class:`StreamGuard`, which answers how many
characters from the stream start are safe to send. Pieces wholly inside that prefix go out
as the bytes Ollama sent; a piece that straddles it is split, and only its released part is
sent now. Pieces without text (tool calls, usage, the final counters) keep their place in
the order. Nothing past the released prefix ever leaves the proxy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guard_proxy.exceptions import ScannerError
from guard_proxy.guard import Direction, StreamGuard, Verdict
from guard_proxy.proxy.shapes import Path, get_path, text_paths, tool_texts, with_texts
from guard_proxy.proxy.verdicts import VerdictService


class _Piece:
    __slots__ = ("end", "obj", "paths", "raw", "start", "texts")

    def __init__(
        self,
        obj: dict[str, Any] | None,
        raw: bytes | None,
        paths: list[Path],
        texts: list[str],
        start: int,
    ) -> None:
        self.obj = obj
        self.raw = raw
        self.paths = paths
        self.texts = texts
        self.start = start
        self.end = start + sum(len(t) for t in texts)


@dataclass(slots=True)
class Step:
    """What to send after one piece: ``out`` bytes, then stop if ``blocked`` or ``failed``."""

    out: list[bytes] = field(default_factory=list)
    blocked: Verdict | None = None
    failed: bool = False


class Releaser:
    """Hold back streamed pieces until the stream guard releases their text.

    **Parameters:**

    * **guard** - a fresh :class:`StreamGuard` for the output direction.
    * **kind** - the route kind (see :mod:`guard_proxy.proxy.shapes`).
    * **encode** - turns a (split) piece back into bytes in the stream's framing.
    * **verdicts** - scans tool-call arguments and applies the fail mode.
    """

    def __init__(
        self,
        guard: StreamGuard,
        kind: str,
        encode: Callable[[dict[str, Any]], bytes],
        verdicts: VerdictService,
    ) -> None:
        self.guard = guard
        self.kind = kind
        self.encode = encode
        self.verdicts = verdicts
        self.pending: deque[_Piece] = deque()
        self.total = 0
        self.released = 0
        self.bypass = False  # a scanner failed under fail_mode open: stop guarding

    def push(self, obj: dict[str, Any] | None, raw: bytes) -> Step:
        """Add one piece (``obj`` is None for pieces without JSON, e.g. SSE comments)."""
        if self.bypass:
            return Step([raw])
        paths = text_paths(obj, self.kind) if obj is not None else []
        texts = [get_path(obj, p) for p in paths] if obj is not None else []
        for tool_text in tool_texts(obj, self.kind) if obj is not None else []:
            verdict = self.verdicts.scan_now(Direction.OUTPUT, tool_text)
            if verdict is None:
                return Step(failed=True)
            if not verdict.allowed:
                return Step(blocked=verdict)
        piece = _Piece(obj, raw, paths, texts, self.total)
        self.pending.append(piece)
        self.total = piece.end
        if piece.end == piece.start:
            return Step(self._release(self.released))
        try:
            verdict, releasable = self.guard.feed("".join(texts))
        except ScannerError as exc:
            return self._scanner_failed(exc)
        if not verdict.allowed:
            return Step(blocked=verdict)
        return Step(self._release(releasable))

    def finish(self) -> Step:
        """The stream ended: scan what is held back and release it all if allowed."""
        if self.bypass:
            return Step()
        try:
            verdict, _ = self.guard.finish()
        except ScannerError as exc:
            return self._scanner_failed(exc)
        if not verdict.allowed:
            return Step(blocked=verdict)
        return Step(self._release(self.total))

    def _scanner_failed(self, exc: ScannerError) -> Step:
        if self.verdicts._failed(Direction.OUTPUT, exc) is None:
            return Step(failed=True)
        self.bypass = True
        out = [p.raw if p.raw is not None else self.encode(p.obj or {}) for p in self.pending]
        self.pending.clear()
        return Step(out)

    def _release(self, upto: int) -> list[bytes]:
        self.released = max(self.released, upto)
        upto = self.released
        out: list[bytes] = []
        pending = self.pending
        while pending:
            piece = pending[0]
            if piece.end <= upto:
                pending.popleft()
                out.append(piece.raw if piece.raw is not None else self.encode(piece.obj or {}))
                continue
            if piece.start < upto and piece.obj is not None:
                cut = upto - piece.start
                head: dict[Path, str] = {}
                tail: dict[Path, str] = {}
                for path, text in zip(piece.paths, piece.texts, strict=True):
                    take = min(len(text), cut)
                    cut -= take
                    head[path] = text[:take]
                    tail[path] = text[take:]
                out.append(self.encode(with_texts(piece.obj, head)))
                piece.obj = with_texts(piece.obj, tail)
                piece.texts = [tail[p] for p in piece.paths]
                piece.raw = None
                piece.start = upto
            break
        return out
