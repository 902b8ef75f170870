"""``pii``: e-mail addresses, card numbers (Luhn), phone numbers (international) and IBANs.

Candidates are found by narrow patterns (literal or narrow first character, boundary
look-behinds after it, so ``re`` skips ahead) and then checked (Luhn, IBAN mod 97, digit counts),
so a random run of digits is not a card number.
"""

from __future__ import annotations

import re

from guard_proxy.config.settings import PiiSettings
from guard_proxy.guard.scanners._base import (
    Judge,
    MultiPatternScanner,
    PatternScanner,
    max_width,
)
from guard_proxy.guard.types import Finding

NAME = "pii"
SPLIT_ABOVE = 16
"""Past this many new characters a stream scans kind by kind (see ``scan_hold``)."""

# Only the tail of the local part is needed to know an address is there.
_EMAIL = r"@(?<=[A-Za-z0-9._%+-]@)[A-Za-z0-9][A-Za-z0-9-]{0,62}\.[A-Za-z]{2}"
# 13-19 digits run together, or groups of 3-6 digits split by single spaces or dashes; not
# inside a longer run of digits. The judge counts the digits and checks Luhn.
_CARD = r"[0-9](?<![0-9][0-9])(?:[0-9]{12,18}|[0-9]{2,5}(?:[ -][0-9]{3,6}){2,5})(?![0-9])"
# E.164-ish: a leading +, then 8-15 digits with light punctuation between them.
_PHONE = r"\+(?<![\w+]\+)[1-9](?:[ .()-]{0,2}[0-9]){7,14}(?![0-9])"
# Country, check digits, then up to 30 letters/digits, optionally grouped by single spaces.
_IBAN = r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]){11,30}"

# Registered IBAN lengths by country (ISO 13616 registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


_DOUBLED = {str(d): d * 2 - 9 if d > 4 else d * 2 for d in range(10)}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    odd = sum(map(int, digits[-1::-2]))
    even = sum(map(_DOUBLED.__getitem__, digits[-2::-2]))
    return (odd + even) % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check of a compact, upper-case IBAN of its country's length."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


_SEPARATOR = re.compile("[ -]")


def _card(m: re.Match[str]) -> str | None:
    # Unseparated: the whole run. Separated: every run of whole groups of 3-6 digits adding up
    # to 13-19 digits ("4111 1111 1111 1111", "3782 822463 10005", "ref 12 4111 1111 ...").
    groups = _SEPARATOR.split(m.group())
    if len(groups) == 1:
        digits = groups[0]
        return "card number" if digits.strip("0") and luhn_valid(digits) else None
    for i in range(len(groups)):
        digits = ""
        for group in groups[i:]:
            digits += group
            if len(digits) > 19:
                break
            if len(digits) >= 13 and digits.strip("0") and luhn_valid(digits):
                return "card number"
    return None


def _phone(m: re.Match[str]) -> str | None:
    count = sum(ch.isdigit() for ch in m.group())
    return "phone number" if 8 <= count <= 15 else None


def _iban(m: re.Match[str]) -> str | None:
    compact = m.group().replace(" ", "")
    length = IBAN_LENGTHS.get(compact[:2])
    if length is None or len(compact) < length:
        return None
    return "IBAN" if iban_valid(compact[:length]) else None


# kind -> (pattern, judge, looks one character past its match)
KINDS: dict[str, tuple[str, Judge, bool]] = {
    "email": (_EMAIL, lambda m: "e-mail address", False),
    "credit_card": (_CARD, _card, True),
    "phone": (_PHONE, _phone, True),
    "iban": (_IBAN, _iban, False),
}


LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_DOMAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def email_open(text: str, since: int) -> int:
    """Where an address that more text could still create or lengthen begins (``>= since``):
    the last word, when the text ends in local-part characters, or in ``word@`` and a domain
    that may go on; ``len(text)`` when none."""
    end = len(text)
    i = end
    while i > since and text[i - 1] in _DOMAIN_CHARS:
        i -= 1
    if i > since and text[i - 1] == "@":
        lo = i - 1
        while lo > since and text[lo - 1] in LOCAL:
            lo -= 1
        return lo if lo < i - 1 else end
    i = end
    while i > since and text[i - 1] in LOCAL:
        i -= 1
    return i


class EmailHoldingScanner(MultiPatternScanner):
    """The PII scanner when e-mail addresses block: a stream also holds the trailing word
    while it could still become an address (the pattern itself only starts at the ``@``,
    so without this the local part would go out before the address is known)."""

    __slots__ = ()

    def hold(self, text: str, start: int) -> int:
        at = super().hold(text, start)
        word = email_open(text, max(start, len(text) - self.window + 1))
        return word if word < at else at

    def scan_hold(self, text: str, start: int, since: int) -> tuple[Finding | None, int]:
        finding, at = super().scan_hold(text, start, since)
        word = email_open(text, max(since, len(text) - self.window + 1, 0))
        return finding, word if word < at else at


def build(direction: str, settings: PiiSettings) -> MultiPatternScanner | None:
    """The scanner of the kinds that block; ``None`` when it is off or none does."""
    if not settings.enabled:
        return None
    kinds = [k for k in dict.fromkeys(settings.kinds) if settings.action(k) == "block"]
    if not kinds:
        return None
    parts = []
    for kind in kinds:
        source, judge, lookahead = KINDS[kind]
        longest = max_width(source)
        assert longest is not None, kind
        parts.append(PatternScanner(NAME, re.compile(source), longest, judge, lookahead=lookahead))
    # Most kinds begin with a character class, which an alternation searches position by
    # position: past a few characters, the exact scans and a search per kind are faster.
    cls = EmailHoldingScanner if "email" in kinds else MultiPatternScanner
    return cls(NAME, parts, split_above=SPLIT_ABOVE)
