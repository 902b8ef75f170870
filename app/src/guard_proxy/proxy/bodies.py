"""Request bodies of the guarded routes: JSON parsing, type checks, and the texts to scan.

Each ``*_fields`` function returns every text the model will read, one per field or message
(so each is cached on its own), with where it is in the body (an :class:`InputField`, so a
redaction can rewrite it), or raises :class:`BadRequest` naming the offending field; each
``*_inputs`` function returns just the texts. Images are not text and are not scanned.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

Path = tuple[str | int, ...]


class InputField(NamedTuple):
    """One scanned text of a request: its ``path`` in the body and its ``text``; ``json``:
    the field holds a JSON value (tool-call arguments as an object) and ``text`` is its
    serialised form. A missing field has ``text == ""``."""

    path: Path
    text: str
    json: bool = False


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


def _tool_call_fields(calls: Any, where: str, at: Path) -> list[InputField]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise BadRequest(f"{where}tool_calls must be a list")
    fields = []
    for k, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            args = function.get("arguments")
            path = (*at, "tool_calls", k, "function", "arguments")
            if isinstance(args, str):
                fields.append(InputField(path, args))
            else:
                fields.append(InputField(path, orjson.dumps(args).decode(), True))
    return fields


def _field(data: dict[str, Any], key: str, at: Path = (), where: str = "") -> InputField:
    return InputField((*at, key), _opt_str(data, key, where))


def generate_fields(data: dict[str, Any]) -> list[InputField]:
    """``/api/generate``: prompt, system and suffix."""
    return [_field(data, "prompt"), _field(data, "system"), _field(data, "suffix")]


def chat_fields(data: dict[str, Any]) -> list[InputField]:
    """``/api/chat``: the content (and thinking, and tool-call arguments) of every message."""
    messages = data.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise BadRequest("messages must be a list")
    fields: list[InputField] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]."
        at: Path = ("messages", i)
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object")
        if not isinstance(message.get("role", ""), str):
            raise BadRequest(f"{where}role must be a string")
        fields.append(_field(message, "content", at, where))
        fields.append(_field(message, "thinking", at, where))
        fields.extend(_tool_call_fields(message.get("tool_calls"), where, at))
        images = message.get("images")
        if images is not None and not isinstance(images, list):
            raise BadRequest(f"{where}images must be a list")
    return fields


def openai_chat_fields(data: dict[str, Any]) -> list[InputField]:
    """``/v1/chat/completions``: every message's content, including text content parts."""
    messages = data.get("messages")
    if not isinstance(messages, list):
        raise BadRequest(
            "messages must be a list" if messages is not None else "messages is required"
        )
    fields: list[InputField] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]."
        at: Path = ("messages", i)
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object")
        content = message.get("content")
        if isinstance(content, str):
            fields.append(InputField((*at, "content"), content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    raise BadRequest(f"{where}content[{j}] must be an object")
                if part.get("type") == "text" or "text" in part:
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise BadRequest(f"{where}content[{j}].text must be a string")
                    fields.append(InputField((*at, "content", j, "text"), text))
        elif content is not None:
            raise BadRequest(f"{where}content must be a string, a list of parts or null")
        for key in ("reasoning", "reasoning_content"):
            fields.append(_field(message, key, at, where))
        fields.extend(_tool_call_fields(message.get("tool_calls"), where, at))
    return fields


def openai_completion_fields(data: dict[str, Any]) -> list[InputField]:
    """``/v1/completions``: the prompt (a string or a list of strings) and the suffix."""
    prompt = data.get("prompt")
    fields: list[InputField] = []
    if isinstance(prompt, str):
        fields.append(InputField(("prompt",), prompt))
    elif isinstance(prompt, list):
        for i, item in enumerate(prompt):
            if not isinstance(item, str):
                raise BadRequest(f"prompt[{i}] must be a string")
            fields.append(InputField(("prompt", i), item))
    elif prompt is not None:
        raise BadRequest("prompt must be a string or a list of strings")
    fields.append(_field(data, "suffix"))
    return fields


def _texts(fields: list[InputField]) -> list[str]:
    return [f.text for f in fields]


def generate_inputs(data: dict[str, Any]) -> list[str]:
    """The texts of :func:`generate_fields`."""
    return _texts(generate_fields(data))


def chat_inputs(data: dict[str, Any]) -> list[str]:
    """The texts of :func:`chat_fields`."""
    return _texts(chat_fields(data))


def openai_chat_inputs(data: dict[str, Any]) -> list[str]:
    """The texts of :func:`openai_chat_fields`."""
    return _texts(openai_chat_fields(data))


def openai_completion_inputs(data: dict[str, Any]) -> list[str]:
    """The texts of :func:`openai_completion_fields`."""
    return _texts(openai_completion_fields(data))
