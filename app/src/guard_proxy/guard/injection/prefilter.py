"""Where a rule can begin: its possible first words, read off its pattern.

A norm rule is only tried (``pattern.match``) at words whose first three letters begin one
of its alternatives; that is what keeps a benign text to one normalisation and a few dict
look-ups. A rule whose first word cannot be read off (``None``) is searched everywhere.
"""

from __future__ import annotations

import re

_LEADING = re.compile(r"^(?:\(\?<!(?:[^()\\]|\\.)*\)|\\b)+")
_WORD = re.compile(r"[a-z0-9]+")


def _split_top(source: str) -> list[str]:
    """``source`` split at its top-level ``|``."""
    parts, depth, start, i = [], 0, 0, 0
    in_class = False
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(source[start:i])
            start = i + 1
        i += 1
    parts.append(source[start:])
    return parts


def _group_end(source: str, start: int) -> int:
    """The index just past the group that opens at ``start``."""
    depth, i, in_class = 0, start, False
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(source)


def leads(source: str) -> set[str] | None:
    """The words a match of ``source`` can begin with (prefixes), or ``None`` if unknown."""
    alternatives = _split_top(source)
    if len(alternatives) > 1:
        out: set[str] = set()
        for alt in alternatives:
            found = leads(alt)
            if found is None:
                return None
            out |= found
        return out
    s = _LEADING.sub("", source)
    if s.startswith("(?:"):
        end = _group_end(s, 0)
        if end < len(s) and s[end] in "?*":
            return None
        return leads(s[3 : end - 1])
    m = _WORD.match(s)
    return {m.group()} if m else None


def key(word: str) -> str:
    """The look-up key of a word or lead: its first three characters."""
    return word[:3]
