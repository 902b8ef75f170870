"""Request bodies of the guarded routes: JSON parsing, type checks, and the texts to scan.

Each ``*_inputs`` function returns every text the model will read, one per field or message
(so each is cached on its own), or raises :class:`BadRequest` naming the offending field.
Images are not text and are not scanned.
"""

from __future__ import annotations

from typing import Any

import orjson


class BadRequest(Exception):
    """The request body is not valid JSON or a field has the wrong type (400)."""


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`BadRequest`."""
    if not body.strip():
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON body: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _opt_str(data: dict[str, Any], key: str, where: str = "") -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{where}{key} must be a string")
    return value


def stream_flag(data: dict[str, Any], default: bool) -> bool:
    """The ``stream`` field (``default`` when absent or null)."""
    value = data.get("stream")
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest("stream must be a boolean")
    return value


def _tool_call_texts(calls: Any, where: str) -> list[str]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise BadRequest(f"{where}tool_calls must be a list")
    texts = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            args = function.get("arguments")
            texts.append(args if isinstance(args, str) else orjson.dumps(args).decode())
    return texts


def generate_inputs(data: dict[str, Any]) -> list[str]:
    """``/api/generate``: prompt, system and suffix."""
    return [_opt_str(data, "prompt"), _opt_str(data, "system"), _opt_str(data, "suffix")]


def chat_inputs(data: dict[str, Any]) -> list[str]:
    """``/api/chat``: the content (and thinking, and tool-call arguments) of every message."""
    messages = data.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise BadRequest("messages must be a list")
    texts: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]."
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object")
        if not isinstance(message.get("role", ""), str):
            raise BadRequest(f"{where}role must be a string")
        texts.append(_opt_str(message, "content", where))
        texts.append(_opt_str(message, "thinking", where))
        texts.extend(_tool_call_texts(message.get("tool_calls"), where))
        images = message.get("images")
        if images is not None and not isinstance(images, list):
            raise BadRequest(f"{where}images must be a list")
    return texts


def openai_chat_inputs(data: dict[str, Any]) -> list[str]:
    """``/v1/chat/completions``: every message's content, including text content parts."""
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise BadRequest(
            "messages must be a list" if messages is not None else "messages is required"
        )
    texts: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]."
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object")
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    raise BadRequest(f"{where}content[{j}] must be an object")
                if part.get("type") == "text" or "text" in part:
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise BadRequest(f"{where}content[{j}].text must be a string")
                    texts.append(text)
        elif content is not None:
            raise BadRequest(f"{where}content must be a string, a list of parts or null")
        for key in ("reasoning", "reasoning_content"):
            texts.append(_opt_str(message, key, where))
        texts.extend(_tool_call_texts(message.get("tool_calls"), where))
    return texts


def openai_completion_inputs(data: dict[str, Any]) -> list[str]:
    """``/v1/completions``: the prompt (a string or a list of strings) and the suffix."""
    prompt = data.get("prompt")
    texts: list[str] = []
    if isinstance(prompt, str):
        texts.append(prompt)
    elif isinstance(prompt, list):
        for i, item in enumerate(prompt):
            if not isinstance(item, str):
                raise BadRequest(f"prompt[{i}] must be a string")
            texts.append(item)
    elif prompt is not None:
        raise BadRequest("prompt must be a string or a list of strings")
    texts.append(_opt_str(data, "suffix"))
    return texts
