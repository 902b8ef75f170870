"""The official `ollama` and `openai` clients through the proxy; blocks raise their errors."""

from __future__ import annotations

import ollama
import openai
import pytest
from guard_proxy_testing.processes import Proxy
from guard_proxy_testing.proxies import INPUT_TERM, OUTPUT_TERM

PREFIX = "Plain words that are perfectly fine to say out loud. " * 8


@pytest.fixture
def oc(proxy: Proxy) -> ollama.Client:
    return ollama.Client(host=proxy.url)


@pytest.fixture
def ai(proxy: Proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="ollama", max_retries=0)


# ---------------------------------------------------------------- ollama


def test_ollama_generate_and_chat(oc: ollama.Client) -> None:
    assert oc.generate(model="llama3.2", prompt="ECHO:hello there").response == "hello there"
    parts = [
        p.response for p in oc.generate(model="llama3.2", prompt="ECHO:streamed text", stream=True)
    ]
    assert "".join(parts) == "streamed text"
    reply = oc.chat(model="llama3.2", messages=[{"role": "user", "content": "ECHO:hi you"}])
    assert reply.message.content == "hi you"
    assert reply.eval_count is not None
    chunks = list(
        oc.chat(
            model="llama3.2",
            stream=True,
            messages=[{"role": "user", "content": "ECHO:chat stream"}],
        )
    )
    assert "".join(c.message.content or "" for c in chunks) == "chat stream"
    assert chunks[-1].done is True


def test_ollama_other_calls(oc: ollama.Client) -> None:
    assert any(m.model == "llama3.2:latest" for m in oc.list().models)
    assert oc.show("llama3.2").details is not None
    assert oc.ps().models
    assert len(oc.embed(model="llama3.2", input="x").embeddings) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_input_block_raises_response_error(oc: ollama.Client, stream: bool) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        result = oc.generate(model="llama3.2", prompt=f"say {INPUT_TERM}", stream=stream)
        if stream:
            list(result)  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert INPUT_TERM not in str(info.value)


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_output_block_raises_response_error(oc: ollama.Client, stream: bool) -> None:
    messages = [{"role": "user", "content": f"ECHO:{PREFIX}{OUTPUT_TERM}"}]
    received = ""
    with pytest.raises(ollama.ResponseError) as info:
        if stream:
            for part in oc.chat(model="llama3.2", messages=messages, stream=True):
                received += part.message.content or ""
        else:
            oc.chat(model="llama3.2", messages=messages)
    assert "output blocked" in str(info.value)
    assert OUTPUT_TERM not in received and "forb" not in received
    if stream:
        assert received and PREFIX.startswith(received)


def test_ollama_unknown_model_is_404(oc: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        oc.generate(model="no-such-model", prompt="hi")
    assert info.value.status_code == 404


async def test_ollama_async_client(proxy: Proxy) -> None:
    client = ollama.AsyncClient(host=proxy.url)
    reply = await client.generate(model="llama3.2", prompt="ECHO:async")
    assert reply.response == "async"
    parts = []
    async for part in await client.chat(
        model="llama3.2", stream=True, messages=[{"role": "user", "content": "ECHO:a-stream"}]
    ):
        parts.append(part.message.content or "")
    assert "".join(parts) == "a-stream"
    with pytest.raises(ollama.ResponseError):
        await client.chat(
            model="llama3.2", messages=[{"role": "user", "content": f"x {INPUT_TERM}"}]
        )


# ---------------------------------------------------------------- openai


def test_openai_chat_and_completions(ai: openai.OpenAI) -> None:
    reply = ai.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "ECHO:from openai"}]
    )
    assert reply.choices[0].message.content == "from openai"
    stream = ai.chat.completions.create(
        model="llama3.2",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "ECHO:streamed openai"}],
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "streamed openai"
    )
    assert chunks[-1].usage is not None
    completion = ai.completions.create(model="llama3.2", prompt="ECHO:completed")
    assert completion.choices[0].text == "completed"
    streamed = ai.completions.create(model="llama3.2", prompt="ECHO:completing", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "completing"


def test_openai_models_and_embeddings(ai: openai.OpenAI) -> None:
    assert "llama3.2:latest" in [m.id for m in ai.models.list()]
    assert ai.models.retrieve("llama3.2:latest").id == "llama3.2:latest"
    assert len(ai.embeddings.create(model="llama3.2", input="x").data) == 1


def test_openai_input_block_raises_bad_request(ai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ai.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": f"{INPUT_TERM}!"}]
        )
    assert info.value.code == "content_policy_violation"
    with pytest.raises(openai.BadRequestError):
        ai.completions.create(model="llama3.2", prompt=[f"{INPUT_TERM}"], stream=True)


def test_openai_output_block_not_streamed_raises_bad_request(ai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ai.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": f"ECHO:{OUTPUT_TERM}"}]
        )
    assert info.value.code == "content_policy_violation"
    with pytest.raises(openai.BadRequestError):
        ai.completions.create(model="llama3.2", prompt=f"ECHO:{OUTPUT_TERM}")


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_openai_output_block_streamed_raises_api_error(ai: openai.OpenAI, kind: str) -> None:
    received = ""
    with pytest.raises(openai.APIError) as info:
        if kind == "chat":
            for chunk in ai.chat.completions.create(
                model="llama3.2",
                stream=True,
                messages=[{"role": "user", "content": f"ECHO:{PREFIX}{OUTPUT_TERM}"}],
            ):
                received += chunk.choices[0].delta.content or "" if chunk.choices else ""
        else:
            for chunk in ai.completions.create(
                model="llama3.2", stream=True, prompt=f"ECHO:{PREFIX}{OUTPUT_TERM}"
            ):
                received += chunk.choices[0].text if chunk.choices else ""
    assert "output blocked" in info.value.message
    assert received and PREFIX.startswith(received)
    assert "forb" not in received


async def test_openai_async_client(proxy: Proxy) -> None:
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    reply = await client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "ECHO:async openai"}]
    )
    assert reply.choices[0].message.content == "async openai"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": INPUT_TERM}]
        )
    await client.close()
