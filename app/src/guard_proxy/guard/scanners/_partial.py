"""Open candidates by partial matching: where a match that more text could complete begins.

Built on the ``regex`` module's ``partial=True``: a search reports a *partial* match when
some path through the pattern runs into the end of the text, i.e. when more text could
still complete it. Two compiled forms of the same patterns are kept:

* ``any``: the patterns as they are. ``regex`` prefers a complete match anywhere in the
  range over a partial one, so one search tells whether any complete match starts in the
  range (then the exact scan must run) and, when none does, where the earliest partial
  one starts.
* ``open``: each pattern followed by ``(?!)``, so it can never complete and every answer is
  a partial match: the earliest start from which some path reaches the end of the text.
  A pattern that looks one character past its match (``lookahead``) is followed by one more
  character first, so a match that ends exactly at the end of the text stays open: its
  verdict depends on the character that has not arrived yet.

A start that is not open stays closed however the text goes on (no path from it reaches
the end, so none can use what follows), which lets a stream search only from its previous
answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import regex

CONTEXT = 16
"""Characters before ``since`` given to look-behinds (``StreamGuard`` keeps as many)."""


_FLAGS = {
    re.IGNORECASE: regex.IGNORECASE,
    re.MULTILINE: regex.MULTILINE,
    re.DOTALL: regex.DOTALL,
    re.VERBOSE: regex.VERBOSE,
    re.ASCII: regex.ASCII,
}


def _regex_flags(flags: int) -> int:
    """``re`` flags as ``regex`` flags (``ASCII`` has another value), in ``re``'s version."""
    out = regex.VERSION0
    for mine, theirs in _FLAGS.items():
        if flags & mine:
            out |= theirs
    return out


# ``LIT(?<![...]LIT)``: a literal, then a look-behind that checks what precedes it (the form
# that ``regex``, like ``re``, searches fast). At the very end of a text the look-behind is not
# reached yet, so every "e" there would look like the start of "eyJ"; with the look-behind
# first it is decided at once, but the search is ~3x slower. Both are kept: the fast form
# finds candidates, the slow one re-checks only starts within the last literal's length.
_LITERAL_THEN_LOOKBEHIND = re.compile(r"^([A-Za-z0-9_@+-]+)\(\?(<[!=])(\[[^\]]*\])\1\)")


def lookbehind_first(source: str) -> tuple[str, int]:
    """``LIT(?<![C]LIT)rest`` as ``(?<![C])LITrest`` (the same matches), and ``len(LIT)``;
    any other source unchanged, and ``0``."""
    m = _LITERAL_THEN_LOOKBEHIND.match(source)
    if m is None:
        return source, 0
    return f"(?{m.group(2)}{m.group(3)}){m.group(1)}{source[m.end() :]}", len(m.group(1))


_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
_NOT_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"


def boundaries_as_lookarounds(source: str) -> str:
    """``\\b`` and ``\\B`` (outside character classes) written as look-arounds: the same
    matches, but at the end of a text ``regex`` treats a look-ahead as open (more text may
    decide it), while it decides ``\\b`` there as if the text had ended."""
    out: list[str] = []
    i, n, in_class = 0, len(source), False
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n:
            nxt = source[i + 1]
            if not in_class and nxt in "bB":
                out.append(_BOUNDARY if nxt == "b" else _NOT_BOUNDARY)
            else:
                out.append(source[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a member, not the end of the class.
            j = i + 1 + (source.startswith("^", i + 1))
            if source.startswith("]", j):
                out.append(source[i : j + 1])
                i = j + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def literal_prefix(source: str, flags: int = 0) -> str:
    """The literal every match of ``source`` begins with (``""`` when none or case-folded)."""
    try:
        from re import _parser  # type: ignore[attr-defined]  # stdlib, private but stable

        parsed = _parser.parse(source, flags)
    except Exception:  # pragma: no cover - depends on the interpreter's private parser
        return ""
    if (flags | parsed.state.flags) & re.IGNORECASE:
        return ""
    out = []
    for op, arg in parsed:
        if op is not _parser.LITERAL:
            break
        out.append(chr(arg))
    return "".join(out)


def _open_source(source: str, lookahead: bool) -> str:
    return f"(?:{source})" + ("[\\s\\S]" if lookahead else "") + "(?!)"


class PartialMatcher:
    """Answers, for one or more patterns of one scanner, which candidates are still open.

    ``patterns`` are ``(source, flags, lookahead)`` as compiled by ``re``; ``fold``, when
    given, turns the text into what they run on (same length). Raises ``regex.error`` (or
    ``ValueError``) when ``regex`` cannot compile them; the caller then keeps the fixed window.
    """

    __slots__ = ("_any", "_exact", "_fold", "_open", "_prefix", "_tail")

    def __init__(
        self,
        patterns: Sequence[tuple[str, int, bool]],
        *,
        fold: Callable[[str], str] | None = None,
    ) -> None:
        flags = 0
        for _, f, _ in patterns:
            flags |= f
        if len(patterns) > 1 and flags & ~re.UNICODE:
            raise ValueError("patterns with flags are not combined")
        rflags = _regex_flags(flags)
        patterns = [(boundaries_as_lookarounds(s), f, la) for s, f, la in patterns]
        self._any = regex.compile("|".join(f"(?:{s})" for s, _, _ in patterns), rflags)
        self._open = regex.compile("|".join(_open_source(s, la) for s, _, la in patterns), rflags)
        exact = [(lookbehind_first(s), la) for s, _, la in patterns]
        # Starts this close to the end may be open only in the fast form.
        self._tail = max(n for (_, n), _ in exact) - 1
        self._exact = (
            regex.compile("|".join(_open_source(s, la) for (s, _), la in exact), rflags)
            if self._tail > 0
            else self._open
        )
        self._fold = fold
        # One pattern that begins with a literal: str.find skips to where a candidate can be.
        self._prefix = literal_prefix(patterns[0][0], flags) if len(patterns) == 1 else ""

    def _first(self, view: str, pos: int) -> int:
        """The first start ``>= pos`` where the literal prefix, or a part of it cut by the end
        of the text, stands; ``len(view)`` when none (then no candidate starts there)."""
        prefix = self._prefix
        i = view.find(prefix, pos)
        if i >= 0:
            return i
        j = view.find(prefix[0], max(pos, len(view) - len(prefix) + 1))
        while j >= 0:
            if prefix.startswith(view[j:]):
                return j
            j = view.find(prefix[0], j + 1)
        return len(view)

    def _view(self, text: str, since: int) -> tuple[str, int]:
        """The text to search and the offset of its first character in ``text``."""
        if self._fold is None:
            return text, 0
        lo = since - CONTEXT if since > CONTEXT else 0
        return self._fold(text[lo:]), lo

    def _refine(self, view: str, at: int) -> int:
        """``at`` (an open start in the fast form) or the first start at or after it that is
        open in the exact form; ``len(view)`` when none is."""
        if at + self._tail < len(view) or at >= len(view):
            return at
        m = self._exact.search(view, at, partial=True)
        return len(view) if m is None else m.start()

    def open_at(self, text: str, since: int) -> int:
        """The earliest index ``>= since`` where an open candidate starts, else ``len(text)``."""
        view, lo = self._view(text, since)
        pos = since - lo
        if self._prefix:
            pos = self._first(view, pos)
            if pos >= len(view):
                return len(text)
        m = self._open.search(view, pos, partial=True)
        return len(text) if m is None else self._refine(view, m.start()) + lo

    def probe(self, text: str, since: int) -> tuple[bool, int]:
        """``(complete, open)``: whether a complete match starts at or after ``since``, and
        :meth:`open_at`."""
        view, lo = self._view(text, since)
        pos = since - lo
        if self._prefix:
            pos = self._first(view, pos)
            if pos >= len(view):
                return False, len(text)
        m = self._any.search(view, pos, partial=True)
        if m is None:
            return False, len(text)
        if m.partial:
            return False, self._refine(view, m.start()) + lo
        m = self._open.search(view, pos, partial=True)
        return True, len(text) if m is None else self._refine(view, m.start()) + lo


def matcher(
    patterns: Sequence[tuple[str, int, bool]], fold: Callable[[str], str] | None = None
) -> PartialMatcher | None:
    """A :class:`PartialMatcher`, or ``None`` when ``regex`` cannot compile the patterns."""
    try:
        return PartialMatcher(patterns, fold=fold)
    except (regex.error, ValueError, OverflowError, RecursionError, TypeError):
        return None
