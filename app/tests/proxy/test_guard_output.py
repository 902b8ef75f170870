"""Output blocks: complete answers scanned whole; streamed ones released only when safe.

The fake model says whatever follows ``ECHO:`` in chunks of 3 characters, so the banned
output term is split across several chunks. No byte of it may ever reach the client.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from guard_proxy_testing.processes import FakeOllama
from guard_proxy_testing.prom import sample
from guard_proxy_testing.proxies import OUTPUT_TERM, ndjson, sse_events

PREFIX = "The quick brown fox jumps over the lazy dog. " * 12  # longer than any window
SAFE = PREFIX + "and then "  # what precedes the term: nothing in it can become a finding


def _echo(text: str) -> str:
    return f"ECHO:{text}"


def _no_term(raw: bytes) -> None:
    assert OUTPUT_TERM.encode() not in raw
    assert b"forb" not in raw  # not even the first characters of it


def _generate_text(lines: list[dict[str, Any]]) -> str:
    return "".join(line.get("response", "") for line in lines)


def _chat_text(lines: list[dict[str, Any]]) -> str:
    return "".join(line.get("message", {}).get("content", "") for line in lines)


# ---------------------------------------------------------------- not streamed


def test_generate_not_streamed_blocked(client: httpx.Client) -> None:
    response = client.post(
        "/api/generate",
        json={"model": "llama3.2", "prompt": _echo(f"ok {OUTPUT_TERM} ok"), "stream": False},
    )
    assert response.status_code == 400
    assert response.json()["guard"] == {"direction": "output", "scanners": ["banned_substrings"]}
    _no_term(response.content)


def test_chat_not_streamed_blocked(client: httpx.Client) -> None:
    response = client.post(
        "/api/chat",
        json={
            "model": "llama3.2",
            "stream": False,
            "messages": [{"role": "user", "content": _echo(OUTPUT_TERM)}],
        },
    )
    assert response.status_code == 400
    assert response.json()["guard"]["direction"] == "output"
    _no_term(response.content)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_v1_not_streamed_blocked(client: httpx.Client, path: str) -> None:
    body: dict[str, Any] = {"model": "llama3.2"}
    if path == "/v1/completions":
        body["prompt"] = _echo(f"x {OUTPUT_TERM}")
    else:
        body["messages"] = [{"role": "user", "content": _echo(f"x {OUTPUT_TERM}")}]
    response = client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"
    _no_term(response.content)


def test_not_streamed_allowed_answer_is_upstreams(client: httpx.Client) -> None:
    response = client.post(
        "/api/chat",
        json={
            "model": "llama3.2",
            "stream": False,
            "messages": [{"role": "user", "content": _echo("all good here")}],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == {"role": "assistant", "content": "all good here"}
    assert body["done"] is True and body["eval_count"] > 0


# ---------------------------------------------------------------- streamed, native


@pytest.mark.parametrize("route", ["/api/generate", "/api/chat"])
def test_native_stream_blocked_mid_answer(client: httpx.Client, route: str) -> None:
    text = _echo(f"{PREFIX}and then {OUTPUT_TERM} appears")
    body: dict[str, Any] = {"model": "llama3.2"}
    if route == "/api/generate":
        body["prompt"] = text
    else:
        body["messages"] = [{"role": "user", "content": text}]
    response = client.post(route, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    _no_term(response.content)
    lines = ndjson(response.content)
    released = _generate_text(lines) if route == "/api/generate" else _chat_text(lines)
    assert released == SAFE  # everything before the term's first character was released
    assert lines[-1]["guard"] == {"direction": "output", "scanners": ["banned_substrings"]}
    assert "error" in lines[-1]
    assert not any(line.get("done") for line in lines)


@pytest.mark.parametrize("route", ["/api/generate", "/api/chat"])
def test_native_stream_allowed_is_complete_with_final_counters(
    client: httpx.Client, route: str
) -> None:
    answer = PREFIX + "the end."
    body: dict[str, Any] = {"model": "llama3.2"}
    if route == "/api/generate":
        body["prompt"] = _echo(answer)
    else:
        body["messages"] = [{"role": "user", "content": _echo(answer)}]
    response = client.post(route, json=body)
    lines = ndjson(response.content)
    text = _generate_text(lines) if route == "/api/generate" else _chat_text(lines)
    assert text == answer
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    for counter in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert counter in final
    assert sum(1 for line in lines if line.get("done")) == 1


def test_native_stream_midstream_error_passes_through(client: httpx.Client) -> None:
    response = client.post(
        "/api/generate", json={"model": "llama3.2", "prompt": "FAIL_MIDSTREAM please"}
    )
    assert response.status_code == 200
    lines = ndjson(response.content)
    assert lines[-1] == {
        "error": "an error was encountered while running the model: unexpected EOF"
    }
    assert _generate_text(lines) == "The sk"  # the held-back text came out before the error


def test_native_stream_tool_calls_intact(client: httpx.Client) -> None:
    response = client.post(
        "/api/chat",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": "TOOLCALL weather?"}]},
    )
    lines = ndjson(response.content)
    calls = [
        line["message"]["tool_calls"] for line in lines if line.get("message", {}).get("tool_calls")
    ]
    assert calls == [[{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]]
    assert lines[-1]["done"] is True


def test_streamed_lines_keep_their_bytes(client: httpx.Client, fake_ollama: FakeOllama) -> None:
    answer = PREFIX + "fin"
    direct = httpx.post(
        f"{fake_ollama.url}/api/generate", json={"model": "llama3.2", "prompt": _echo(answer)}
    ).content
    proxied = client.post(
        "/api/generate", json={"model": "llama3.2", "prompt": _echo(answer)}
    ).content

    # created_at may tick between the calls; every other field stays on its line. The
    # text may shift: a piece ending in a possible start of a blocked term ("fo" of "fox"
    # for "forbidden-term") is held back and rides in the next line when the upstream
    # read ended there, so the text is compared whole, and no line is added or dropped.
    def fields(body: bytes) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in line.items() if k not in ("created_at", "response")}
            for line in ndjson(body)
        ]

    def text(body: bytes) -> str:
        return "".join(line.get("response", "") for line in ndjson(body))

    assert fields(proxied) == fields(direct)
    assert text(proxied) == text(direct) == answer


# ---------------------------------------------------------------- streamed, SSE


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_sse_stream_blocked_mid_answer(client: httpx.Client, path: str) -> None:
    text = _echo(f"{PREFIX}and then {OUTPUT_TERM} appears")
    body: dict[str, Any] = {"model": "llama3.2", "stream": True}
    if path == "/v1/completions":
        body["prompt"] = text
    else:
        body["messages"] = [{"role": "user", "content": text}]
    response = client.post(path, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    _no_term(response.content)
    events = sse_events(response.content)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "content_policy_violation"
    chunks = [json.loads(e) for e in events[:-2]]
    if path == "/v1/completions":
        released = "".join(c["choices"][0]["text"] for c in chunks)
    else:
        released = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert released == SAFE


def test_sse_allowed_with_usage_chunk_and_done(client: httpx.Client) -> None:
    answer = PREFIX + "done"
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "llama3.2",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": _echo(answer)}],
        },
    )
    events = sse_events(response.content)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        == answer
    )
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_sse_midstream_error_passes_through(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "llama3.2",
            "stream": True,
            "messages": [{"role": "user", "content": "FAIL_MIDSTREAM"}],
        },
    )
    events = sse_events(response.content)
    assert json.loads(events[-1])["error"]["type"] == "api_error"


def test_sse_tool_calls_intact(client: httpx.Client) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "llama3.2",
            "stream": True,
            "messages": [{"role": "user", "content": "TOOLCALL"}],
        },
    )
    events = sse_events(response.content)
    first = json.loads(events[0])
    assert first["choices"][0]["delta"]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert events[-1] == "[DONE]"


def test_blocked_stream_closes_upstream(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    # A long answer: the term comes early, thousands of characters follow.
    text = _echo(f"{marker} {OUTPUT_TERM} " + "x" * 30000)
    response = client.post("/api/generate", json={"model": "llama3.2", "prompt": text})
    assert "error" in ndjson(response.content)[-1]
    import time

    deadline = time.monotonic() + 10
    outcome = None
    while time.monotonic() < deadline:
        (seen,) = fake_ollama.requests(marker)
        outcome = seen.get("stream_outcome")
        if outcome != "started":
            break
        time.sleep(0.05)
    assert outcome == "aborted"


def test_output_block_is_counted_and_logged_without_text(
    client: httpx.Client, proxy: Any, marker: str
) -> None:
    client.post(
        "/api/generate",
        json={"model": "llama3.2", "stream": False, "prompt": _echo(f"{marker}: {OUTPUT_TERM}")},
    )
    metrics = client.get("/metrics").text
    blocks = sample(
        metrics, "guard_proxy_blocks_total", scanner="banned_substrings", direction="output"
    )
    assert blocks is not None and blocks >= 1
    logs = proxy.logs()
    assert OUTPUT_TERM not in logs
    assert marker not in logs
    assert any(r.get("verdict") == "blocked_output" for r in proxy.log_records())
