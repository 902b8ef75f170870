"""Decode-and-rescan: text that is obviously encoded, in a prompt that asks for decoding.

Runs only when the ``encoded.decode_and_follow`` cue hit (the prompt talks about decoding,
or about following something encoded). Each candidate (base64 and hex runs, URL-encoded runs,
and the whole text under rot13 or reversed when the cue names them) is decoded and scanned
by the same rules; what it says counts as evidence at the candidate's place.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable, Iterator
from urllib.parse import unquote

BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :,-]?){8,}(?![0-9A-Fa-f])")
URL = re.compile(r"(?:%[0-9A-Fa-f]{2}[^\s%]{0,3}){4,}")
_LONGEST = 2048
"""Candidates longer than this are not decoded (bounds the work and the stream window)."""

Rescan = Callable[[str], float]
"""Scores a decoded text by the rules (the evidence it carries)."""


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    good = sum(1 for c in text if c.isprintable() or c in "\n\t\r")
    return text if good >= 0.9 * len(text) else None


def _b64(blob: str) -> str | None:
    s = blob.rstrip("=")
    s = s + "=" * (-len(s) % 4)
    try:
        data = base64.b64decode(s.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable(data)


def _hex(blob: str) -> str | None:
    digits = re.sub(r"[ :,-]", "", blob)
    if len(digits) % 2:
        return None
    try:
        return _printable(bytes.fromhex(digits))
    except ValueError:
        return None


def candidates(raw: str, cue: str, at: tuple[int, int]) -> Iterator[tuple[int, int, str]]:
    """``(start, end, decoded)`` for each decodable stretch of ``raw``; ``cue`` is the
    normalised text of the cue (which names the encoding, for rot13 and reversal) and ``at``
    its place, where what the whole text says under rot13 or reversed is counted."""
    for m in BASE64.finditer(raw):
        if m.end() - m.start() <= _LONGEST:
            decoded = _b64(m.group())
            if decoded is not None:
                yield m.start(), m.end(), decoded
    for m in HEX.finditer(raw):
        if m.end() - m.start() <= _LONGEST:
            decoded = _hex(m.group())
            if decoded is not None:
                yield m.start(), m.end(), decoded
    for m in URL.finditer(raw):
        if m.end() - m.start() <= _LONGEST:
            yield m.start(), m.end(), unquote(m.group())
    if "rot" in cue or "caesar" in cue:
        yield at[0], at[1], codecs.decode(raw, "rot13")
    if "revers" in cue or "backward" in cue:
        yield at[0], at[1], raw[::-1]
