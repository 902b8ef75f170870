"""Release streamed pieces (NDJSON lines, SSE events) only as far as the stream guard allows.

Pieces are queued with :meth:`Releaser.add` and their text is scanned by :meth:`flush` (once
per upstream read, however many pieces it held; with the same outcome as scanning piece by
piece, see :meth:`StreamGuard.feed_many`). The route's :class:`Shape` says where a piece's
text is; the :class:`StreamGuard` answers how many characters from the stream start are
safe to send. Pieces wholly inside that prefix go out as the bytes Ollama sent; a piece that
straddles it is split, and only its released part is sent now, written by the stream's
framing. The held-back rest of a split piece travels in the next piece with text in the
same field, so each flush sends at most one line that was not received as such. Pieces
without text (tool calls, usage, the final counters) keep their place in the order. Nothing
past the released prefix ever leaves the proxy. A scanner error goes to the verdict
service's fail mode (:meth:`VerdictService.scanner_failed`): closed stops the stream, open
stops guarding it. With a :class:`~guard_proxy.guard.redaction.Rewriter` (placeholders to
restore, values to mask), text is released only up to where the rewriter has settled, and each
piece is written with the rewriter's edits applied (an edit's replacement goes in the piece
where the edit begins); fail open keeps rewriting.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from guard_proxy.exceptions import ScannerError
from guard_proxy.guard import Direction, StreamGuard, Verdict
from guard_proxy.guard.redaction import Edit, Rewriter, apply
from guard_proxy.proxy.redact import rewrite_tool_calls
from guard_proxy.proxy.shapes import Path, Shape, get_path, with_texts
from guard_proxy.proxy.streamformat import StreamFormat
from guard_proxy.proxy.verdicts import VerdictService


class Stop(Enum):
    """Why a stream stops before its end."""

    BLOCKED = "blocked"  # a scanner found something (the step's ``verdict`` says which)
    FAILED = "failed"  # a scanner failed under ``fail_mode: closed``
    UNREADABLE = "unreadable"  # the upstream stream could not be parsed


class _Piece:
    """One line or event. ``raw`` is ``None`` once its text differs from what was received."""

    __slots__ = ("end", "obj", "paths", "raw", "split", "start", "texts")

    def __init__(
        self,
        obj: dict[str, Any] | None,
        raw: bytes | None,
        paths: list[Path],
        texts: list[str],
        start: int,
        end: int,
    ) -> None:
        self.obj = obj
        self.raw = raw
        self.paths = paths
        self.texts = texts
        self.start = start
        self.end = end
        self.split = False  # its head has been sent; what is left is held back


@dataclass(slots=True)
class Step:
    """What to send after some pieces: ``out`` bytes, then end the stream if ``stop`` is set
    (``verdict``: the blocking verdict when ``stop`` is :attr:`Stop.BLOCKED`)."""

    out: list[bytes] = field(default_factory=list)
    stop: Stop | None = None
    verdict: Verdict | None = None

    @property
    def blocked(self) -> Verdict | None:
        """The verdict that blocked the stream, or None."""
        return self.verdict if self.stop is Stop.BLOCKED else None

    @property
    def failed(self) -> bool:
        """The guard could not check the stream."""
        return self.stop is Stop.FAILED or self.stop is Stop.UNREADABLE


class Releaser:
    """Hold back streamed pieces until the stream guard releases their text.

    **Parameters:**

    * **guard** - a fresh :class:`StreamGuard` for the output direction.
    * **shape** - the route's :class:`Shape`: where a piece's text and tool calls are.
    * **fmt** - the stream's :class:`~guard_proxy.proxy.streamformat.StreamFormat`; split
      pieces are written back in it, and :func:`~guard_proxy.proxy.framing.relay_stream`
      reads and ends the stream in it.
    * **verdicts** - scans tool-call arguments and applies the fail mode.
    * **rewriter** - restores placeholders and masks values in the text, or ``None``.
    """

    def __init__(
        self,
        guard: StreamGuard,
        shape: Shape,
        fmt: StreamFormat,
        verdicts: VerdictService,
        rewriter: Rewriter | None = None,
    ) -> None:
        self.guard = guard
        self.shape = shape
        self.format = fmt
        self.verdicts = verdicts
        self._text_paths = shape.text_paths  # bound once: called per piece
        self._tool_texts = shape.tool_texts
        self._encode = fmt.encode
        self.pending: deque[_Piece] = deque()
        self.total = 0
        self.released = 0
        self.bypass = False  # a scanner failed under fail_mode open: stop guarding
        self._unfed: list[str] = []  # each queued piece's text since the last scan
        self._out: list[bytes] = []  # pieces passed through in bypass mode
        self.rewriter = rewriter
        self._edits: list[Edit] = []  # settled edits not yet wholly released
        self.masked: dict[str, int] = {}  # values masked in the answer, by kind

    def add(self, obj: dict[str, Any] | None, raw: bytes) -> Step | None:
        """Queue one piece (``obj`` is None for pieces without JSON, e.g. SSE comments).

        Returns a :class:`Step` only when the piece stops the stream (a tool call blocked or
        its scan failed closed); its text is scanned by the next :meth:`flush` or :meth:`finish`.
        """
        if self.bypass and self.rewriter is None:
            self._out.append(raw)
            return None
        rewritten = False
        if obj is None:
            paths: list[Path] = []
            texts: list[str] = []
        else:
            paths = self._text_paths(obj)
            texts = [get_path(obj, p) for p in paths]
            tool_texts = self._tool_texts(obj)
            for tool_text in tool_texts if not self.bypass else ():
                verdict = self.verdicts.scan_now(Direction.OUTPUT, tool_text)
                if verdict is None or not verdict.allowed:
                    # What came before the tool call is released as far as the guard allows.
                    step = self.flush()
                    if step.stop is None:
                        step.stop = Stop.FAILED if verdict is None else Stop.BLOCKED
                        step.verdict = verdict
                    return step
            # A tool call comes whole in one piece: its arguments are rewritten at once.
            if tool_texts and self.rewriter is not None and rewrite_tool_calls(obj, self.rewriter):
                rewritten = True
        start = self.total
        if texts:
            text = texts[0] if len(texts) == 1 else "".join(texts)
            self._unfed.append(text)
            self.total += len(text)
        piece = _Piece(obj, None if rewritten else raw, paths, texts, start, self.total)
        pending = self.pending
        if pending and pending[-1].split and _merge(pending[-1], piece):
            pending.pop()
        pending.append(piece)
        return None

    def flush(self) -> Step:
        """Scan the text queued since the last flush and release what the guard allows."""
        if self.bypass and self.rewriter is None:
            return self._take_out()
        if self._unfed:
            settled = self._rewrite(self._unfed)
            if self.bypass:
                self._unfed.clear()
                return Step(self._release(settled))
            try:
                verdict, releasable = self.guard.feed_many(self._unfed)
            except ScannerError as exc:
                return self._scanner_failed(exc)
            finally:
                self._unfed.clear()
            releasable = min(releasable, settled)
            if not verdict.allowed:
                return Step(self._release(releasable), Stop.BLOCKED, verdict)
            return Step(self._release(releasable))
        return Step(self._release(self.released))

    def _rewrite(self, texts: list[str]) -> int:
        """Feed the rewriter; how far the text is settled (all of it without a rewriter)."""
        rewriter = self.rewriter
        if rewriter is None:
            return self.total
        edits = rewriter.feed(texts[0] if len(texts) == 1 else "".join(texts))
        if edits:
            self._note(edits)
        return rewriter.settled

    def _note(self, edits: list[Edit]) -> None:
        self._edits.extend(edits)
        for e in edits:
            if e.kind:
                self.masked[e.kind] = self.masked.get(e.kind, 0) + 1

    def finish(self) -> Step:
        """The stream ended: scan what is queued and held back, and release it all if allowed."""
        if self.bypass and self.rewriter is None:
            return self._take_out()
        if self._unfed:
            step = self.flush()
            if step.stop is not None or (self.bypass and self.rewriter is None):
                return step
            out = step.out
        else:
            out = []
        if self.bypass:
            return Step(out + self._finish_rewrite())
        try:
            verdict, _ = self.guard.finish()
        except ScannerError as exc:
            failed = self._scanner_failed(exc)
            failed.out[:0] = out
            if self.bypass and self.rewriter is not None:
                failed.out.extend(self._finish_rewrite())
            return failed
        if not verdict.allowed:
            return Step(out, Stop.BLOCKED, verdict)
        out.extend(self._finish_rewrite())
        return Step(out)

    def _finish_rewrite(self) -> list[bytes]:
        if self.rewriter is not None:
            self._note(self.rewriter.finish())
        return self._release(self.total)

    def pending_start(self) -> int:
        """Where the text of the first piece not yet sent begins (edits before it are done)."""
        return _first_start(self.pending, self.total)

    def _take_out(self) -> Step:
        out, self._out = self._out, []
        return Step(out)

    def _scanner_failed(self, exc: ScannerError) -> Step:
        if self.verdicts.scanner_failed(Direction.OUTPUT, exc) is None:
            return Step(stop=Stop.FAILED)
        self.bypass = True
        self._unfed.clear()
        if self.rewriter is not None:
            # Fail open stops the scanners, never the rewriting.
            return Step(self._release(self.rewriter.settled))
        out = [self._bytes(p) for p in self.pending]
        self.pending.clear()
        return Step(out)

    def _bytes(self, piece: _Piece) -> bytes:
        if self._edits and piece.texts:
            texts = self._edited(piece.start, piece.texts)
            if texts is not piece.texts:
                piece.texts, piece.raw = texts, None
        if piece.raw is not None:
            return piece.raw
        obj = piece.obj or {}
        return self._encode(with_texts(obj, dict(zip(piece.paths, piece.texts, strict=True))))

    def _edited(self, start: int, texts: list[str]) -> list[str]:
        """``texts`` (the stream's characters from ``start``) with the edits applied, or
        ``texts`` itself when no edit touches them."""
        end = start + sum(len(t) for t in texts)
        edits = [e for e in self._edits if e.start < end and e.end > start]
        if not edits:
            return texts
        out = []
        for text in texts:
            out.append(apply(text, start, edits))
            start += len(text)
        return out

    def _release(self, upto: int) -> list[bytes]:
        self.released = max(self.released, upto)
        upto = self.released
        if self._edits and self._edits[0].end <= self.pending_start():
            self._edits = [e for e in self._edits if e.end > self.pending_start()]
        out: list[bytes] = []
        pending = self.pending
        while pending:
            piece = pending[0]
            if piece.end <= upto:
                pending.popleft()
                out.append(self._bytes(piece))
                continue
            if piece.start < upto and piece.obj is not None:
                cut = upto - piece.start
                heads: list[str] = []
                tail: list[str] = []
                for text in piece.texts:
                    take = min(len(text), cut)
                    cut -= take
                    heads.append(text[:take])
                    tail.append(text[take:])
                if self._edits:
                    heads = self._edited(piece.start, heads)
                head: dict[Path, str] = dict(zip(piece.paths, heads, strict=True))
                out.append(self._encode(with_texts(piece.obj, head)))
                piece.texts = tail
                piece.raw = None
                piece.start = upto
                piece.split = True
                if len(pending) > 1 and _merge(piece, pending[1]):
                    pending.popleft()
            break
        return out


def _first_start(pending: deque[_Piece], default: int) -> int:
    return pending[0].start if pending else default


def _merge(rest: _Piece, nxt: _Piece) -> bool:
    """Move the held-back text of a split piece into the next piece, if it has text in the
    same field (then the rest needs no line of its own). Returns whether it moved."""
    live = [(p, t) for p, t in zip(rest.paths, rest.texts, strict=True) if t]
    if len(live) != 1 or not nxt.paths or nxt.paths[0] != live[0][0]:
        return False
    nxt.texts[0] = live[0][1] + nxt.texts[0]
    nxt.start = rest.start
    nxt.raw = None
    return True
