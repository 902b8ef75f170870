"""Redaction end to end: the official clients, the fake upstream's received body, the answer.

The fake model echoes what follows ``ECHO:`` in chunks of 3 characters, so a placeholder it
repeats is split across chunks; it only ever sees placeholders, and the client reads the
original values back.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import ollama
import openai
import pytest
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.processes import FakeOllama
from guard_proxy_testing.proxies import StartApp, ndjson, sse_events
from guard_proxy_testing.redis_server import RedisServer

ALICE = "alice.liddell@example.com"
BOB = "bob.smith@corp.example.org"
CARD = "4111 1111 1111 1111"
VALUES = (ALICE, BOB, CARD)


def _prompt(marker: str) -> str:
    return f"{marker} ECHO:Write to {ALICE}, cc {BOB} and {ALICE}; card {CARD}."


def _redacted(marker: str) -> str:
    return f"{marker} ECHO:Write to [EMAIL_1], cc [EMAIL_2] and [EMAIL_1]; card [CARD_1]."


ANSWER = f"Write to {ALICE}, cc {BOB} and {ALICE}; card {CARD}."


def _received(fake: FakeOllama, marker: str) -> dict[str, Any]:
    (seen,) = fake.requests(marker)
    text = json.dumps(seen["body"])
    assert not any(v in text for v in VALUES), text
    body: dict[str, Any] = seen["body"]
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_chat_sends_placeholders_and_reads_originals(
    proxy: InProcessProxy, fake_ollama: FakeOllama, marker: str, stream: bool
) -> None:
    client = ollama.Client(host=proxy.url)
    messages = [
        {"role": "system", "content": f"Reply to {BOB} only."},
        {"role": "user", "content": _prompt(marker)},
    ]
    if stream:
        parts = client.chat(model="llama3.2", messages=messages, stream=True)
        text = "".join(p.message.content or "" for p in parts)
    else:
        text = client.chat(model="llama3.2", messages=messages).message.content or ""
    assert text == ANSWER
    body = _received(fake_ollama, marker)
    # One vault for the whole request: BOB is [EMAIL_1] in the system message, met first.
    assert body["messages"][0]["content"] == "Reply to [EMAIL_1] only."
    assert body["messages"][1]["content"] == (
        f"{marker} ECHO:Write to [EMAIL_2], cc [EMAIL_1] and [EMAIL_2]; card [CARD_1]."
    )


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_generate_sends_placeholders_and_reads_originals(
    proxy: InProcessProxy, fake_ollama: FakeOllama, marker: str, stream: bool
) -> None:
    client = ollama.Client(host=proxy.url)
    if stream:
        parts = client.generate(model="llama3.2", prompt=_prompt(marker), stream=True)
        text = "".join(p.response for p in parts)
    else:
        text = client.generate(model="llama3.2", prompt=_prompt(marker)).response
    assert text == ANSWER
    assert _received(fake_ollama, marker)["prompt"] == _redacted(marker)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_sends_placeholders_and_reads_originals(
    proxy: InProcessProxy, fake_ollama: FakeOllama, marker: str, stream: bool
) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="ollama", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": _prompt(marker)}]
    if stream:
        chunks = client.chat.completions.create(model="llama3.2", messages=messages, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = client.chat.completions.create(model="llama3.2", messages=messages)
        text = reply.choices[0].message.content or ""
    assert text == ANSWER
    assert _received(fake_ollama, marker)["messages"][0]["content"] == _redacted(marker)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_completion_sends_placeholders_and_reads_originals(
    proxy: InProcessProxy, fake_ollama: FakeOllama, marker: str, stream: bool
) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="ollama", max_retries=0)
    if stream:
        chunks = client.completions.create(model="llama3.2", prompt=_prompt(marker), stream=True)
        text = "".join(c.choices[0].text for c in chunks if c.choices)
    else:
        text = client.completions.create(model="llama3.2", prompt=_prompt(marker)).choices[0].text
    assert text == ANSWER
    assert _received(fake_ollama, marker)["prompt"] == _redacted(marker)


def test_header_and_log_field_name_kinds_and_counts_never_values(
    client: httpx.Client, proxy: InProcessProxy, marker: str
) -> None:
    response = client.post(
        "/api/generate", json={"model": "llama3.2", "prompt": _prompt(marker), "stream": False}
    )
    assert response.status_code == 200
    assert response.headers["x-guard-redacted"] == "credit_card=1,email=2"
    records = [r for r in proxy.log_records() if marker in json.dumps(r) or "redacted" in r]
    assert any(r.get("redacted") == "credit_card=1,email=2" for r in records)
    assert not any(v in proxy.logs() for v in VALUES)
    metrics = client.get("/metrics").text
    assert 'guard_proxy_redactions_total{direction="input",kind="email"}' in metrics


def test_tool_call_arguments_are_redacted(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    messages = [
        {"role": "user", "content": f"{marker} send it"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "send", "arguments": {"to": ALICE, "note": marker}}},
                {"function": {"name": "send", "arguments": json.dumps({"to": BOB})}},
            ],
        },
    ]
    response = client.post(
        "/api/chat", json={"model": "llama3.2", "messages": messages, "stream": False}
    )
    assert response.status_code == 200
    body = _received(fake_ollama, marker)
    calls = body["messages"][1]["tool_calls"]
    assert calls[0]["function"]["arguments"] == {"to": "[EMAIL_1]", "note": marker}
    assert calls[1]["function"]["arguments"] == json.dumps({"to": "[EMAIL_2]"})


def test_unrewritable_body_is_refused_never_forwarded(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    # A card number as a JSON number in tool-call arguments: its placeholder is not JSON.
    messages = [
        {"role": "user", "content": f"{marker} pay"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "pay", "arguments": {"card": 4111111111111111}}}],
        },
    ]
    response = client.post("/api/chat", json={"model": "llama3.2", "messages": messages})
    assert response.status_code == 400
    assert "not forwarded" in response.json()["error"]
    # The value also sits in a field the guard does not scan: refused, in the /v1 format.
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "llama3.2",
            "messages": [{"role": "user", "content": f"{marker} mail {ALICE}"}],
            "stop": [ALICE],
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fake_ollama.requests(marker) == []


def test_cached_redaction_forwards_byte_identical_text_through_redis(
    app_factory: StartApp,
    redis_server: RedisServer,
    fake_ollama: FakeOllama,
    marker: str,
) -> None:
    first = app_factory(config={"cache": {"backend": "redis"}}, env=redis_server.env())
    second = app_factory(config={"cache": {"backend": "redis"}}, env=redis_server.env())
    body = {"model": "llama3.2", "prompt": _prompt(marker), "stream": False}
    one = httpx.post(f"{first.url}/api/generate", json=body, timeout=10)
    two = httpx.post(f"{second.url}/api/generate", json=body, timeout=10)
    assert one.headers["x-guard-cache"] == "miss"
    assert two.headers["x-guard-cache"] == "hit"
    assert one.json()["response"] == two.json()["response"] == ANSWER
    a, b = fake_ollama.requests(marker)
    assert a["body"] == b["body"] and a["body"]["prompt"] == _redacted(marker)
    # Redis holds offsets and kinds, never the values.
    with redis_server.client() as r:
        stored = " ".join(r.get(k) or "" for k in r.keys("guard:*"))
    assert '"spans"' in stored
    assert not any(v in stored for v in VALUES)


def test_model_written_email_is_masked_and_never_partly_streamed(
    app_factory: StartApp, marker: str
) -> None:
    # The input guard lets the address through, so the model can write it itself.
    proxy = app_factory(config={"guard": {"input": {"pii": {"enabled": False}}}})
    text = "Ask carol.danvers@example.com or call."
    body = {"model": "llama3.2", "prompt": f"{marker} ECHO:{text}", "stream": True}
    response = httpx.post(f"{proxy.url}/api/generate", json=body, timeout=10)
    parts = [line["response"] for line in ndjson(response.content)]
    assert "".join(parts) == "Ask [EMAIL_REDACTED] or call."
    assert not any("carol" in p or "danvers" in p for p in parts)
    complete = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "llama3.2", "messages": [{"role": "user", "content": f"ECHO:{text}"}]},
        timeout=10,
    ).json()
    assert complete["choices"][0]["message"]["content"] == "Ask [EMAIL_REDACTED] or call."
    events = sse_events(
        httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={
                "model": "llama3.2",
                "stream": True,
                "messages": [{"role": "user", "content": f"ECHO:{text}"}],
            },
            timeout=10,
        ).content
    )
    deltas = [
        json.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events
        if e != "[DONE]" and json.loads(e)["choices"]
    ]
    assert "".join(deltas) == "Ask [EMAIL_REDACTED] or call."
    assert not any("carol" in d for d in deltas)


def test_restore_off_leaves_placeholders(
    app_factory: StartApp, fake_ollama: FakeOllama, marker: str
) -> None:
    proxy = app_factory(config={"guard": {"input": {"pii": {"restore": False}}}})
    body = {"model": "llama3.2", "prompt": _prompt(marker), "stream": True}
    response = httpx.post(f"{proxy.url}/api/generate", json=body, timeout=10)
    text = "".join(line.get("response", "") for line in ndjson(response.content))
    assert text == "Write to [EMAIL_1], cc [EMAIL_2] and [EMAIL_1]; card [CARD_1]."


def test_block_action_still_refuses(app_factory: StartApp, marker: str) -> None:
    proxy = app_factory(config={"guard": {"input": {"pii": {"actions": {"email": "block"}}}}})
    body = {"model": "llama3.2", "prompt": f"{marker} to {ALICE}", "stream": False}
    response = httpx.post(f"{proxy.url}/api/generate", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["guard"]["scanners"] == ["pii"]


async def test_no_value_of_one_request_reaches_another_under_concurrency(
    proxy: InProcessProxy,
) -> None:
    client = ollama.AsyncClient(host=proxy.url)

    async def one(i: int) -> tuple[int, str]:
        own = f"user{i}.n{i * 7919}@example.com"
        prompt = f"ECHO:mine is {own} and [EMAIL_1] [EMAIL_2] [CARD_1] end"
        parts = []
        async for p in await client.generate(model="llama3.2", prompt=prompt, stream=True):
            parts.append(p.response)
        return i, "".join(parts)

    results = await asyncio.gather(*(one(i) for i in range(40)))
    for i, text in results:
        own = f"user{i}.n{i * 7919}@example.com"
        # Its own value twice (the one it sent, the placeholder the model echoed), nothing
        # of another request; placeholders it never got are left as they are.
        assert text == f"mine is {own} and {own} [EMAIL_2] [CARD_1] end"
