"""Where the model's text lives in each guarded route's answers (complete and streamed).

A path is a tuple of keys/indexes into the parsed JSON object. ``text_paths`` lists the
string fields that hold generated text, in the order the client reads them; ``tool_texts``
returns tool-call arguments, which are scanned whole and passed on intact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from guard_proxy.proxy import bodies

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Shape:
    """One guarded route: how to read its inputs and where its output text is."""

    route: str
    kind: str  # generate | chat | openai_chat | openai_completion
    inputs: Callable[[dict[str, Any]], list[str]]
    stream_default: bool


GENERATE = Shape("/api/generate", "generate", bodies.generate_inputs, True)
CHAT = Shape("/api/chat", "chat", bodies.chat_inputs, True)
OPENAI_CHAT = Shape("/v1/chat/completions", "openai_chat", bodies.openai_chat_inputs, False)
OPENAI_COMPLETION = Shape(
    "/v1/completions", "openai_completion", bodies.openai_completion_inputs, False
)


def text_paths(obj: dict[str, Any], kind: str) -> list[Path]:
    """The paths of non-empty generated text in ``obj`` (a line, an event or a whole answer)."""
    paths: list[Path] = []
    if kind == "generate":
        for key in ("thinking", "response"):
            if _is_text(obj.get(key)):
                paths.append((key,))
    elif kind == "chat":
        message = obj.get("message")
        if isinstance(message, dict):
            for key in ("thinking", "content"):
                if _is_text(message.get(key)):
                    paths.append(("message", key))
    else:
        choices = obj.get("choices")
        if isinstance(choices, list):
            for i, choice in enumerate(choices):
                if not isinstance(choice, dict):
                    continue
                if kind == "openai_completion":
                    if _is_text(choice.get("text")):
                        paths.append(("choices", i, "text"))
                    continue
                for holder in ("delta", "message"):
                    part = choice.get(holder)
                    if isinstance(part, dict):
                        for key in ("reasoning", "reasoning_content", "content"):
                            if _is_text(part.get(key)):
                                paths.append(("choices", i, holder, key))
    return paths


def tool_texts(obj: dict[str, Any], kind: str) -> list[str]:
    """Tool-call arguments in ``obj`` as strings (scanned whole, forwarded unchanged)."""
    calls: list[Any] = []
    if kind == "chat":
        message = obj.get("message")
        if isinstance(message, dict) and isinstance(message.get("tool_calls"), list):
            calls = message["tool_calls"]
    elif kind == "openai_chat" and isinstance(obj.get("choices"), list):
        for choice in obj["choices"]:
            if not isinstance(choice, dict):
                continue
            for holder in ("delta", "message"):
                part = choice.get(holder)
                if isinstance(part, dict) and isinstance(part.get("tool_calls"), list):
                    calls.extend(part["tool_calls"])
    texts = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            args = function.get("arguments")
            if args:
                texts.append(args if isinstance(args, str) else orjson.dumps(args).decode())
    return texts


def get_path(obj: Any, path: Path) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def with_texts(obj: dict[str, Any], values: dict[Path, str]) -> dict[str, Any]:
    """A copy of ``obj`` with the strings at ``values``' paths replaced (copy on write)."""
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
