"""Text as the language rules see it: folded letters, words joined by single spaces.

``normalise`` applies NFKC, drops zero-width, bidi-control and Unicode tag characters, folds
confusable letters (Cyrillic, Greek) and leetspeak digits/symbols to Latin letters, lower-cases,
and turns every run of non-word characters into one space. ``normalise_mapped`` gives the same
string plus, for each of its characters, the index in the original text it came from (what a
stream needs to say where a finding begins). Both agree character for character.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Leetspeak and symbol stand-ins for letters (applied after lower-casing).
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}

# Letters that look Latin but are not (Cyrillic and Greek), folded to the Latin letter.
_CONFUSABLE = dict(
    zip(
        "\u0430\u0432\u0435\u0451\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445\u0456"
        "\u0457\u0458\u0455\u0501\u051b\u051d\u04bb\u0261\u0251\u03bf\u03b1\u03b5\u03b9\u03ba"
        "\u03bd\u03c1\u03c4\u03c5\u03c7\u03b2\u03b7\u0461",
        "abeekmhopctyxiijsdqwhgaoaeikvptuxbnw",
        strict=True,
    )
)

_TABLE = str.maketrans({**_LEET, **_CONFUSABLE})
LEET = str.maketrans(_LEET)
"""The leetspeak fold alone (what the lexicon applies to its own words)."""
_WORD_ASCII = re.compile(r"[a-z0-9]+")


def _invisible(ch: str) -> bool:
    code = ord(ch)
    return (
        unicodedata.category(ch) == "Cf"  # format: zero-width, bidi controls, soft hyphen
        or 0xE0000 <= code <= 0xE007F  # tag characters
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
    )


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    """One character as folded letters ('' for an invisible one; may be several letters)."""
    if _invisible(ch):
        return ""
    return unicodedata.normalize("NFKC", ch).lower().translate(_TABLE)


def normalise(text: str) -> str:
    """``text`` folded and with words joined by single spaces (see the module docstring)."""
    if text.isascii():
        return " ".join(_WORD_ASCII.findall(text.lower().translate(_TABLE)))
    return normalise_mapped(text)[0]


def normalise_mapped(text: str) -> tuple[str, list[int]]:
    """``(normalise(text), origin)``: ``origin[k]`` is where character ``k`` came from."""
    if text.isascii():
        words: list[str] = []
        where: list[int] = []
        for m in _WORD_ASCII.finditer(text.lower().translate(_TABLE)):
            if words:
                where.append(m.start())  # the space before a word: where the word begins
            words.append(m.group())
            where.extend(range(m.start(), m.end()))
        return " ".join(words), where
    out: list[str] = []
    origin: list[int] = []
    gap = False
    for i, ch in enumerate(text):
        folded = ch.lower().translate(_TABLE) if ch.isascii() else _fold_char(ch)
        for c in folded:
            if c.isalnum():
                if gap and out:
                    out.append(" ")
                    origin.append(i)
                gap = False
                out.append(c)
                origin.append(i)
            else:
                gap = True
    return "".join(out), origin
