"""Input blocks: every field the model reads is scanned; 400, and Ollama is never called."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from guard_proxy_testing.processes import FakeOllama
from guard_proxy_testing.proxies import INPUT_TERM


def _assert_native_block(response: httpx.Response, direction: str = "input") -> None:
    assert response.status_code == 400
    body = response.json()
    assert body["guard"] == {"direction": direction, "scanners": ["banned_substrings"]}
    assert isinstance(body["error"], str)
    assert INPUT_TERM not in response.text


def _assert_v1_block(response: httpx.Response) -> None:
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "content_policy_violation"
    assert INPUT_TERM not in response.text


@pytest.mark.parametrize("field", ["prompt", "system", "suffix"])
@pytest.mark.parametrize("stream", [True, False])
def test_generate_fields_blocked(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str, field: str, stream: bool
) -> None:
    body: dict[str, Any] = {"model": "llama3.2", "prompt": f"hello {marker}", "stream": stream}
    body[field] = f"{marker} please {INPUT_TERM.upper()} now"  # case-insensitive
    response = client.post("/api/generate", json=body)
    _assert_native_block(response)
    assert fake_ollama.requests(marker) == []


@pytest.mark.parametrize("role", ["system", "user", "assistant", "tool"])
def test_chat_every_message_of_every_role(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str, role: str
) -> None:
    messages = [
        {"role": "system", "content": "be nice"},
        {"role": role, "content": f"{marker} {INPUT_TERM}"},
        {"role": "user", "content": f"last message is harmless {marker}"},
    ]
    response = client.post("/api/chat", json={"model": "llama3.2", "messages": messages})
    _assert_native_block(response)
    assert fake_ollama.requests(marker) == []


def test_chat_tool_call_arguments_scanned(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    messages = [
        {"role": "user", "content": f"weather {marker}"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {"q": INPUT_TERM}}}],
        },
    ]
    response = client.post("/api/chat", json={"model": "llama3.2", "messages": messages})
    _assert_native_block(response)
    assert fake_ollama.requests(marker) == []


def test_chat_images_are_not_text(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "describe", "images": ["aGVsbG8="]}]
    response = client.post(
        "/api/chat", json={"model": "llama3.2", "messages": messages, "stream": False}
    )
    assert response.status_code == 200


def test_v1_chat_every_message_and_content_parts(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": f"{marker} {INPUT_TERM}"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"hi {marker}"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]
    response = client.post("/v1/chat/completions", json={"model": "llama3.2", "messages": messages})
    _assert_v1_block(response)
    assert fake_ollama.requests(marker) == []


@pytest.mark.parametrize("prompt_kind", ["string", "list"])
def test_v1_completions_prompt_string_or_list(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str, prompt_kind: str
) -> None:
    prompt: Any = f"{marker} {INPUT_TERM}"
    if prompt_kind == "list":
        prompt = [f"fine {marker}", f"{marker} {INPUT_TERM}"]
    response = client.post(
        "/v1/completions", json={"model": "llama3.2", "prompt": prompt, "stream": True}
    )
    _assert_v1_block(response)
    assert fake_ollama.requests(marker) == []


def test_builtin_pii_scanner_redacts_email_by_default(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    response = client.post(
        "/api/generate",
        json={"model": "llama3.2", "prompt": f"{marker} mail me at jane.doe@example.com"},
    )
    assert response.status_code == 200
    assert response.headers["x-guard-redacted"] == "email=1"
    (seen,) = fake_ollama.requests(marker)
    assert seen["body"]["prompt"] == f"{marker} mail me at [EMAIL_1]"


def test_allowed_request_reaches_upstream_unchanged(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    raw = (
        b'{"model":"llama3.2","prompt":"hello '
        + marker.encode()
        + b'","stream":false,  "options":{"seed":42}}'
    )
    response = client.post(
        "/api/generate", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.headers["x-guard-cache"] in ("miss", "hit")
    (seen,) = fake_ollama.requests(marker)
    assert seen["body"] == {
        "model": "llama3.2",
        "prompt": f"hello {marker}",
        "stream": False,
        "options": {"seed": 42},
    }


def test_repeated_prompt_is_a_cache_hit(client: httpx.Client, marker: str) -> None:
    body = {"model": "llama3.2", "prompt": f"repeat {marker}", "stream": False}
    first = client.post("/api/generate", json=body)
    second = client.post("/api/generate", json=body)
    assert first.headers["x-guard-cache"] == "miss"
    assert second.headers["x-guard-cache"] == "hit"


def test_growing_conversation_rescans_only_new_messages(client: httpx.Client, marker: str) -> None:
    history = [{"role": "user", "content": f"first {marker}"}]
    first = client.post(
        "/api/chat", json={"model": "llama3.2", "messages": history, "stream": False}
    )
    assert first.headers["x-guard-cache"] == "miss"
    again = client.post(
        "/api/chat", json={"model": "llama3.2", "messages": history, "stream": False}
    )
    assert again.headers["x-guard-cache"] == "hit"
