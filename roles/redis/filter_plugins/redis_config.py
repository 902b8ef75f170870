"""Filters for writing values into Redis and Sentinel configuration files."""

from __future__ import annotations

from typing import Any

_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\a": "\\a",
    "\b": "\\b",
}


def redis_quote(value: Any) -> str:
    """Quote ``value`` as one argument of a Redis/Sentinel configuration line.

    Redis splits configuration lines with ``sdssplitargs``: inside double
    quotes it reads ``\\\\``, ``\\"``, ``\\n``, ``\\r``, ``\\t``, ``\\a``,
    ``\\b`` and ``\\xHH``. This writes the same form Redis's own
    ``CONFIG REWRITE`` writes (``sdscatrepr``), so any string, spaces, quotes
    and ``#`` included, reads back unchanged.
    """
    out = ['"']
    for ch in str(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class FilterModule:
    """redis_quote."""

    def filters(self) -> dict[str, Any]:
        return {"redis_quote": redis_quote}
