"""Where the model's text lives in each guarded route's answers (complete and streamed).

A :class:`Shape` is one guarded route: how its request's inputs are read, whether it
streams by default, and where its output text is. A path is a tuple of keys/indexes into
the parsed JSON object. :attr:`Shape.text_paths` lists the string fields that hold generated
text, in the order the client reads them; :attr:`Shape.tool_texts` returns tool-call
arguments, which are scanned whole and passed on intact. Each :class:`Kind` has its own pair
of functions, so nothing downstream switches on the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from guard_proxy.proxy import bodies

Path = tuple[str | int, ...]


class Kind(StrEnum):
    """The answer format of a guarded route."""

    GENERATE = "generate"
    CHAT = "chat"
    OPENAI_CHAT = "openai_chat"
    OPENAI_COMPLETION = "openai_completion"


@dataclass(frozen=True, slots=True)
class Shape:
    """One guarded route: how to read its inputs and where its output text is.

    * **text_paths** - the paths of non-empty generated text in an object (a line, an event
      or a whole answer).
    * **tool_texts** - tool-call arguments in an object, as strings.
    """

    route: str
    kind: Kind
    inputs: Callable[[dict[str, Any]], list[str]]
    stream_default: bool
    text_paths: Callable[[dict[str, Any]], list[Path]]
    tool_texts: Callable[[dict[str, Any]], list[str]]
    fields: Callable[[dict[str, Any]], list[bodies.InputField]]
    """Like ``inputs``, with where each text is (what a redaction rewrites)."""

    def output_texts(self, obj: dict[str, Any]) -> list[str]:
        """Every text of a complete answer the output guard must see: text, then tool calls."""
        return [get_path(obj, p) for p in self.text_paths(obj)] + self.tool_texts(obj)


# ---------------------------------------------------------------------- text fields


def _generate_paths(obj: dict[str, Any]) -> list[Path]:
    paths: list[Path] = []
    for key in ("thinking", "response"):
        if _is_text(obj.get(key)):
            paths.append((key,))
    return paths


def _chat_paths(obj: dict[str, Any]) -> list[Path]:
    paths: list[Path] = []
    message = obj.get("message")
    if isinstance(message, dict):
        for key in ("thinking", "content"):
            if _is_text(message.get(key)):
                paths.append(("message", key))
    return paths


def _openai_chat_paths(obj: dict[str, Any]) -> list[Path]:
    paths: list[Path] = []
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return paths
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        for holder in ("delta", "message"):
            part = choice.get(holder)
            if isinstance(part, dict):
                for key in ("reasoning", "reasoning_content", "content"):
                    if _is_text(part.get(key)):
                        paths.append(("choices", i, holder, key))
    return paths


def _openai_completion_paths(obj: dict[str, Any]) -> list[Path]:
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return []
    return [
        ("choices", i, "text")
        for i, choice in enumerate(choices)
        if isinstance(choice, dict) and _is_text(choice.get("text"))
    ]


# ---------------------------------------------------------------------- tool calls


def _no_tools(obj: dict[str, Any]) -> list[str]:
    return []


def _chat_tools(obj: dict[str, Any]) -> list[str]:
    message = obj.get("message")
    if isinstance(message, dict) and isinstance(message.get("tool_calls"), list):
        return _arguments(message["tool_calls"])
    return []


def _openai_chat_tools(obj: dict[str, Any]) -> list[str]:
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return []
    calls: list[Any] = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        for holder in ("delta", "message"):
            part = choice.get(holder)
            if isinstance(part, dict) and isinstance(part.get("tool_calls"), list):
                calls.extend(part["tool_calls"])
    return _arguments(calls)


def _arguments(calls: list[Any]) -> list[str]:
    texts = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            args = function.get("arguments")
            if args:
                texts.append(args if isinstance(args, str) else orjson.dumps(args).decode())
    return texts


GENERATE = Shape(
    "/api/generate",
    Kind.GENERATE,
    bodies.generate_inputs,
    True,
    _generate_paths,
    _no_tools,
    bodies.generate_fields,
)
CHAT = Shape(
    "/api/chat",
    Kind.CHAT,
    bodies.chat_inputs,
    True,
    _chat_paths,
    _chat_tools,
    bodies.chat_fields,
)
OPENAI_CHAT = Shape(
    "/v1/chat/completions",
    Kind.OPENAI_CHAT,
    bodies.openai_chat_inputs,
    False,
    _openai_chat_paths,
    _openai_chat_tools,
    bodies.openai_chat_fields,
)
OPENAI_COMPLETION = Shape(
    "/v1/completions",
    Kind.OPENAI_COMPLETION,
    bodies.openai_completion_inputs,
    False,
    _openai_completion_paths,
    _no_tools,
    bodies.openai_completion_fields,
)
SHAPES = {shape.kind: shape for shape in (GENERATE, CHAT, OPENAI_CHAT, OPENAI_COMPLETION)}
"""The guarded routes' shapes by kind."""


def get_path(obj: Any, path: Path) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def with_texts(obj: dict[str, Any], values: dict[Path, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with the values at ``values``' paths replaced (copy on write)."""
    root = dict(obj)
    for path, value in values.items():
        node: Any = root
        for key in path[:-1]:
            child = node[key]
            child = list(child) if isinstance(child, list) else dict(child)
            node[key] = child
            node = child
        node[path[-1]] = value
    return root


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""
