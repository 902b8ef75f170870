"""Redaction on a guarded route: the request rewritten with placeholders, the answer restored.

:class:`RedactionPolicy` is built once from the settings: which kinds are put back into
answers and which are masked when the model writes them itself. :func:`redact_body` rewrites
a request body from the input verdicts' spans (cached offsets give byte-identical bodies) and
refuses one it cannot rewrite safely: a JSON-valued field whose rewrite is no longer JSON, or
a redacted value still present anywhere in the body (a field the guard does not scan).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from guard_proxy.config.settings import GuardSettings
from guard_proxy.guard.redaction import Finder, Rewriter, Vault, apply, rewrite
from guard_proxy.guard.types import Span
from guard_proxy.proxy.bodies import InputField
from guard_proxy.proxy.shapes import Path, Shape, get_path, with_texts

HEADER = b"x-guard-redacted"
UNSAFE = (
    "the request holds a value the guard redacts in a field it cannot rewrite safely; "
    "it was not forwarded"
)


class Unredactable(Exception):
    """The body holds a value to redact that cannot be replaced safely (the route's 400)."""


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """``restorable``: kinds whose placeholders are put back into answers; ``output``: the
    kinds masked where the model writes them (``None`` when none is)."""

    restorable: frozenset[str] = frozenset()
    output: Finder | None = None

    @classmethod
    def from_settings(cls, settings: GuardSettings) -> RedactionPolicy:
        if not settings.enabled:
            return cls()
        restorable: set[str] = set()
        for section in (settings.input.pii, settings.input.secrets):
            if section.enabled and section.restore:
                restorable.update(k for k in section.kinds if section.action(k) == "redact")
        output = Finder.from_settings(settings.output)
        return cls(frozenset(restorable), output if output else None)

    def rewriter(self, vault: Vault) -> Rewriter | None:
        """The answer's rewriter for a request, or ``None`` when there is nothing to do."""
        rewriter = Rewriter(vault.restorations(), self.output)
        return rewriter if rewriter else None


def redact_body(
    data: dict[str, Any],
    fields: Sequence[InputField],
    spans: Sequence[tuple[Span, ...]],
    vault: Vault,
) -> bytes:
    """The body with every span replaced by its placeholder (raises :class:`Unredactable`)."""
    texts: dict[Path, str] = {}
    values: dict[Path, Any] = {}
    for f, found in zip(fields, spans, strict=False):
        if not found:
            continue
        redacted = vault.redact(f.text, found)
        if not f.json:
            texts[f.path] = redacted
            continue
        try:
            values[f.path] = orjson.loads(redacted)
        except orjson.JSONDecodeError:
            raise Unredactable(UNSAFE) from None
    out = with_texts(data, {**texts, **values})
    body = orjson.dumps(out)
    for value in vault.values():
        if orjson.dumps(value)[1:-1] in body:
            raise Unredactable(UNSAFE)
    return body


def rewrite_answer(
    shape: Shape, obj: dict[str, Any], rewriter: Rewriter | None
) -> tuple[bool, dict[str, int]]:
    """Rewrite a complete answer's text fields in place: whether anything changed, and the
    values masked per kind."""
    masked: dict[str, int] = {}
    if rewriter is None:
        return False, masked
    changed = rewrite_tool_calls(obj, rewriter)
    for path in shape.text_paths(obj):
        text = get_path(obj, path)
        one = Rewriter(rewriter.restorations, rewriter.finder)
        edits = one.feed(text) + one.finish()
        if not edits:
            continue
        _set(obj, path, apply(text, 0, edits))
        changed = True
        for e in edits:
            if e.kind:
                masked[e.kind] = masked.get(e.kind, 0) + 1
    return changed, masked


def rewrite_tool_calls(obj: dict[str, Any], rewriter: Rewriter) -> bool:
    """Restore placeholders (and mask values) in the tool-call arguments of an answer or a
    stream piece, in place, native (``message``) or ``/v1`` (``choices[].message|delta``);
    whether anything changed. Arguments are rewritten whole, string leaf by string leaf."""
    holders: list[Any] = [obj.get("message")]
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                holders += [choice.get("message"), choice.get("delta")]
    changed = False
    for holder in holders:
        calls = holder.get("tool_calls") if isinstance(holder, dict) else None
        if not isinstance(calls, list):
            continue
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and "arguments" in function:
                new = _rewrite_value(function["arguments"], rewriter)
                if new != function["arguments"]:
                    function["arguments"] = new
                    changed = True
    return changed


def _rewrite_value(value: Any, rewriter: Rewriter) -> Any:
    if isinstance(value, str):
        return rewrite(value, rewriter.restorations, rewriter.finder)
    if isinstance(value, list):
        return [_rewrite_value(v, rewriter) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite_value(v, rewriter) for k, v in value.items()}
    return value


def _set(obj: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def header_value(counts: Mapping[str, int]) -> bytes:
    """``email=2,credit_card=1``: kinds and counts, never values."""
    return ",".join(f"{k}={n}" for k, n in sorted(counts.items())).encode()
