"""Bad input (400, 413) and upstream errors passed through with their own status and body."""

from __future__ import annotations

import httpx
import pytest
from guard_proxy_testing.processes import FakeOllama
from guard_proxy_testing.proxies import MAX_BODY, StartApp


@pytest.mark.parametrize(
    "path", ["/api/generate", "/api/chat", "/v1/chat/completions", "/v1/completions"]
)
def test_malformed_json_is_400_with_message(
    client: httpx.Client, fake_ollama: FakeOllama, path: str, marker: str
) -> None:
    response = client.post(
        path,
        content=b'{"model": "llama3.2", "prompt": "' + marker.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    message = error["message"] if path.startswith("/v1/") else error
    assert "invalid JSON" in message
    assert fake_ollama.requests(marker) == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/generate", {"model": "m", "prompt": ["not", "a", "string"]}, "prompt"),
        ("/api/generate", {"model": "m", "prompt": "x", "system": 3}, "system"),
        ("/api/generate", {"model": "m", "prompt": "x", "stream": "yes"}, "stream"),
        ("/api/chat", {"model": "m", "messages": "hello"}, "messages"),
        ("/api/chat", {"model": "m", "messages": ["hello"]}, "messages[0]"),
        (
            "/api/chat",
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
        ),
        ("/v1/chat/completions", {"model": "m", "messages": {"role": "user"}}, "messages"),
        (
            "/v1/chat/completions",
            {
                "model": "m",
                "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}],
            },
            "messages[0].content[0].text",
        ),
        ("/v1/completions", {"model": "m", "prompt": 42}, "prompt"),
        ("/v1/completions", {"model": "m", "prompt": ["ok", 1]}, "prompt[1]"),
    ],
)
def test_wrong_types_are_400_naming_the_field(
    client: httpx.Client, path: str, body: dict[str, object], field: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    message = error["message"] if path.startswith("/v1/") else error
    assert message.startswith(field)


def test_body_not_an_object_is_400(client: httpx.Client) -> None:
    response = client.post("/api/generate", json=["a"])
    assert response.status_code == 400


def test_oversize_body_with_length_is_413(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    prompt = marker + "a" * (MAX_BODY + 10)
    response = client.post("/api/generate", json={"model": "llama3.2", "prompt": prompt})
    assert response.status_code == 413
    assert "max_body_bytes" in response.json()["error"]
    v1 = client.post("/v1/completions", json={"model": "llama3.2", "prompt": prompt})
    assert v1.status_code == 413
    assert v1.json()["error"]["code"] == "request_too_large"
    assert fake_ollama.requests(marker) == []


def test_oversize_chunked_body_is_413(proxy: object, fake_ollama: FakeOllama, marker: str) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "llama3.2", "prompt": "' + marker.encode()
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"a" * 1024
        yield b'"}'

    with httpx.Client(base_url=proxy.url, timeout=30) as c:  # type: ignore[attr-defined]
        response = c.post("/api/generate", content=chunks())
    assert response.status_code == 413
    assert fake_ollama.requests(marker) == []


def test_oversize_passthrough_body_is_413(client: httpx.Client) -> None:
    response = client.post("/api/embed", json={"model": "llama3.2", "input": "a" * MAX_BODY})
    assert response.status_code == 413


def test_upstream_404_passed_through(client: httpx.Client) -> None:
    native = client.post("/api/generate", json={"model": "no-such-model", "prompt": "hi"})
    assert native.status_code == 404
    assert native.json() == {"error": 'model "no-such-model" not found, try pulling it first'}
    chat = client.post(
        "/api/chat",
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 404
    v1 = client.post(
        "/v1/chat/completions",
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert v1.status_code == 404
    assert v1.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("status", [400, 429, 500, 503])
def test_upstream_errors_keep_their_status(client: httpx.Client, status: int) -> None:
    native = client.post("/api/generate", json={"model": "llama3.2", "prompt": f"STATUS:{status}"})
    assert native.status_code == status
    assert native.json() == {"error": f"fake upstream error {status}"}
    v1 = client.post("/v1/completions", json={"model": "llama3.2", "prompt": f"STATUS:{status}"})
    assert v1.status_code == status
    assert v1.json()["error"]["message"] == f"fake upstream error {status}"


def test_model_required_400_from_upstream(client: httpx.Client) -> None:
    response = client.post("/api/generate", json={"prompt": "hi"})
    assert response.status_code == 400
    assert response.json() == {"error": "model is required"}


def test_unknown_route_is_404(client: httpx.Client) -> None:
    assert client.get("/api/nothing-here").status_code == 404


_BROKEN_REQUESTS = {
    "/api/generate": {"model": "llama3.2", "prompt": "BREAK_BODY", "stream": False},
    "/api/chat": {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "BREAK_BODY"}],
        "stream": False,
    },
    "/v1/chat/completions": {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "BREAK_BODY"}],
    },
}


def test_upstream_broken_before_the_answer_is_502_in_route_format(
    app_factory: StartApp,
) -> None:
    """Ollama drops a complete answer half-way: nothing was sent yet, so 502, not a crash."""
    proxy = app_factory()
    with proxy.client() as client:
        for path, body in _BROKEN_REQUESTS.items():
            response = client.post(path, json=body)
            assert response.status_code == 502, (path, response.text)
            error = response.json()["error"]
            if path.startswith("/v1/"):
                assert error["code"] == "upstream_unavailable"
                assert "broke the answer off" in error["message"]
            else:
                assert "broke the answer off" in error
    log = proxy.logs()
    assert "Traceback" not in log
    assert "Exception in ASGI application" not in log
