"""Error bodies in each endpoint family's own format.

Native Ollama routes answer ``{"error": "<message>"}``; ``/v1`` routes answer
``{"error": {"message", "type", "param", "code"}}`` as the OpenAI clients expect. A guard
block adds ``"guard": {"direction", "scanners"}`` to the native shape and uses the code
``content_policy_violation`` in the ``/v1`` shape. No message ever contains scanned text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from guard_proxy.proxy.asgi import Send, send_bytes

JSON_TYPE = b"application/json; charset=utf-8"


def is_openai(path: str) -> bool:
    """Whether ``path`` belongs to the OpenAI-compatible family."""
    return path.startswith("/v1/")


def error_body(
    path: str,
    message: str,
    *,
    openai_type: str = "invalid_request_error",
    code: str | None = None,
) -> dict[str, Any]:
    """The error object for ``path``'s family."""
    if is_openai(path):
        return {"error": {"message": message, "type": openai_type, "param": None, "code": code}}
    return {"error": message}


def block_message(direction: str, scanners: Sequence[str]) -> str:
    """The human-readable reason of a guard block (scanner names only, never text)."""
    names = ", ".join(scanners) if scanners else "guard"
    return f"{direction} blocked by guard policy ({names})"


def block_body(path: str, direction: str, scanners: Sequence[str]) -> dict[str, Any]:
    """The body of a guard block in ``path``'s family."""
    message = block_message(direction, scanners)
    if is_openai(path):
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "content_policy_violation",
            }
        }
    return {"error": message, "guard": {"direction": direction, "scanners": list(scanners)}}


async def send_json(
    send: Send,
    status: int,
    data: Any,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send ``data`` as a complete JSON response."""
    await send_bytes(send, status, orjson.dumps(data), JSON_TYPE, headers)


async def send_error(
    send: Send,
    path: str,
    status: int,
    message: str,
    *,
    openai_type: str | None = None,
    code: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send an error response in ``path``'s family format."""
    if openai_type is None:
        openai_type = "invalid_request_error" if status < 500 else "api_error"
    body = error_body(path, message, openai_type=openai_type, code=code)
    await send_json(send, status, body, headers)
