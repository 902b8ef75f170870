"""A client that goes away closes the upstream request, streamed or not."""

from __future__ import annotations

import time

import httpx
import pytest
from guard_proxy_testing.processes import FakeOllama, Proxy


def _outcome(fake_ollama: FakeOllama, marker: str, timeout: float = 15) -> str | None:
    deadline = time.monotonic() + timeout
    outcome = None
    while time.monotonic() < deadline:
        seen = fake_ollama.requests(marker)
        outcome = seen[0].get("stream_outcome") if seen else None
        if outcome not in (None, "started"):
            return outcome
        time.sleep(0.05)
    return outcome


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", {"model": "llama3.2", "prompt": "SLOW {m}"}),
        ("/api/chat", {"model": "llama3.2", "messages": [{"role": "user", "content": "SLOW {m}"}]}),
        (
            "/v1/chat/completions",
            {
                "model": "llama3.2",
                "stream": True,
                "messages": [{"role": "user", "content": "SLOW {m}"}],
            },
        ),
        ("/v1/completions", {"model": "llama3.2", "stream": True, "prompt": "SLOW {m}"}),
    ],
)
def test_disconnect_mid_stream_closes_upstream(
    proxy: Proxy, fake_ollama: FakeOllama, marker: str, path: str, body: dict[str, object]
) -> None:
    import json

    payload = json.loads(json.dumps(body).replace("{m}", marker))
    with (
        httpx.Client(base_url=proxy.url, timeout=30) as c,
        c.stream("POST", path, json=payload) as response,
    ):
        assert response.status_code == 200
        received = b""
        for chunk in response.iter_bytes():
            received += chunk
            if len(received) > 200:
                break  # leave mid-stream: the connection is closed on exit
    assert _outcome(fake_ollama, marker) == "aborted"


@pytest.mark.parametrize("path", ["/api/generate", "/api/chat"])
def test_disconnect_while_waiting_for_a_complete_answer(
    proxy: Proxy, fake_ollama: FakeOllama, marker: str, path: str
) -> None:
    body: dict[str, object] = {"model": "llama3.2", "stream": False}
    if path == "/api/generate":
        body["prompt"] = f"SLOW {marker}"
    else:
        body["messages"] = [{"role": "user", "content": f"SLOW {marker}"}]
    with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=proxy.url, timeout=1.0) as c:
        c.post(path, json=body)
    assert _outcome(fake_ollama, marker) == "aborted"


def test_disconnect_on_passthrough_stream(
    proxy: Proxy, fake_ollama: FakeOllama, marker: str
) -> None:
    before = fake_ollama.stats()["streams_aborted"]
    with (
        httpx.Client(base_url=proxy.url, timeout=30) as c,
        c.stream(
            "POST", "/api/generate", json={"model": "llama3.2", "prompt": f"SLOW {marker}"}
        ) as response,
    ):
        next(response.iter_bytes())
    assert _outcome(fake_ollama, marker) == "aborted"
    assert fake_ollama.stats()["streams_aborted"] > before
