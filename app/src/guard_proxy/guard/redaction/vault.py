"""The placeholders of one request: ``[EMAIL_1]`` for the first e-mail address, and so on.

A :class:`Vault` lives for one request and no longer; it is never shared, cached or logged.
Placeholders are numbered per label in the order values are met; the same value always gets
the same placeholder. :meth:`Vault.redact` writes a text with its spans replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from guard_proxy.guard.redaction.find import label
from guard_proxy.guard.types import Span


class Vault:
    """Values and their placeholders for one request.

    ``restorable``: the kinds whose values may be put back into the answer.
    """

    __slots__ = ("_by_value", "_counts", "_kinds", "_values", "restorable")

    def __init__(self, restorable: Iterable[str] = ()) -> None:
        self.restorable = frozenset(restorable)
        self._by_value: dict[str, str] = {}
        self._values: dict[str, str] = {}
        self._kinds: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder of ``value`` (a new one the first time it is seen)."""
        known = self._by_value.get(value)
        if known is not None:
            return known
        name = label(kind)
        n = self._counts.get(name, 0) + 1
        self._counts[name] = n
        placeholder = f"[{name}_{n}]"
        self._by_value[value] = placeholder
        self._values[placeholder] = value
        self._kinds[placeholder] = kind
        return placeholder

    def redact(self, text: str, spans: Iterable[Span]) -> str:
        """``text`` with each span (in order, not overlapping) replaced by its placeholder."""
        out: list[str] = []
        pos = 0
        for kind, start, end in spans:
            out.append(text[pos:start])
            out.append(self.placeholder(kind, text[start:end]))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def values(self) -> list[str]:
        """Every value redacted so far (to check that none is left in a forwarded body)."""
        return list(self._by_value)

    def restorations(self) -> Mapping[str, str]:
        """Placeholder -> value for the kinds that may be restored."""
        return {p: v for p, v in self._values.items() if self._kinds[p] in self.restorable}

    def counts(self) -> dict[str, int]:
        """Distinct values per kind (what the response header and log field say)."""
        out: dict[str, int] = {}
        for kind in self._kinds.values():
            out[kind] = out.get(kind, 0) + 1
        return out

    def __bool__(self) -> bool:
        return bool(self._values)
