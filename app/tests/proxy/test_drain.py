"""Draining on SIGTERM: streams run on until ``server.drain_timeout``, then end in-band.

Real ``guard-proxy serve`` processes on a fake Ollama of their own whose ``SLOW`` answers
take a few seconds (80 pieces, 50 ms apart). A stream that ends before the deadline ends
normally; one still running at the deadline gets its route's own last frame (an NDJSON
error line; an SSE error event and ``[DONE]``); a request still waiting for Ollama gets 503
in its route's error shape. Never a torn connection.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from guard_proxy_testing.notify import NotifySocket
from guard_proxy_testing.processes import (
    FakeOllama,
    Proxy,
    assert_serve_config_error,
)
from guard_proxy_testing.proxies import StartProxy
from guard_proxy_testing.servers import start_fake_ollama

from guard_proxy.proxy.drain import CUT_MESSAGE

WAIT = 60.0
CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "SLOW"}]}


@pytest.fixture(scope="module")
def slow_ollama() -> Iterator[FakeOllama]:
    fake = start_fake_ollama({"FAKE_OLLAMA_SLOW_CHUNKS": "80", "FAKE_OLLAMA_SLOW_DELAY": "0.05"})
    try:
        yield fake
    finally:
        fake.stop()


def _terminate(proxy: Proxy) -> None:
    proxy.process.proc.send_signal(signal.SIGTERM)


def _exited(proxy: Proxy) -> int:
    return proxy.process.proc.wait(timeout=WAIT)


def _refused(port: int) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def _wait_recorded(fake: FakeOllama, marker: str) -> None:
    deadline = time.monotonic() + WAIT
    while not fake.requests(marker):
        assert time.monotonic() < deadline, "the request never reached Ollama"
        time.sleep(0.02)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stream_in_flight_ends_normally_when_it_ends_before_the_deadline(
    proxy_factory: StartProxy, slow_ollama: FakeOllama, notify_socket: NotifySocket, workers: str
) -> None:
    proxy = proxy_factory(
        upstream=slow_ollama.url,
        env={"NOTIFY_SOCKET": str(notify_socket.path), "PROXY_WORKERS": workers},
    )
    ready = notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    with (
        proxy.client(timeout=WAIT) as client,
        client.stream("POST", "/api/chat", json=CHAT) as reply,
    ):
        assert reply.status_code == 200
        lines = reply.iter_lines()
        first = json.loads(next(lines))
        assert first["done"] is False
        _terminate(proxy)
        # Not ready from now on; the stream is still running.
        notify_socket.wait_for("STATUS=DRAINING", lambda m: m.startswith("STATUS=DRAINING"), ready)
        assert _refused(proxy.port)  # no new connection is accepted
        rest = [json.loads(line) for line in lines if line.strip()]
    assert rest, "nothing after SIGTERM"
    assert all("error" not in obj for obj in rest), rest[-1]
    assert rest[-1]["done"] is True
    assert _exited(proxy) in (0, -signal.SIGTERM)
    draining = [r["in_flight"] for r in proxy.log_records() if r.get("msg") == "draining"]
    assert len(draining) == int(workers) and sum(draining) == 1  # one worker had the stream
    assert not any(r.get("msg", "").startswith("drain timeout") for r in proxy.log_records())


def _stream_until_cut(proxy: Proxy, path: str, body: dict[str, Any]) -> list[bytes]:
    """Start a stream, SIGTERM the proxy once it flows, and return every line received."""
    with (
        proxy.client(timeout=WAIT) as client,
        client.stream("POST", path, json=body) as reply,
    ):
        assert reply.status_code == 200
        chunks = reply.iter_bytes()
        received = next(chunks)
        _terminate(proxy)
        for chunk in chunks:  # ends cleanly: a torn connection raises here
            received += chunk
    return received.split(b"\n")


def test_at_the_deadline_an_ndjson_stream_ends_with_an_error_line(
    proxy_factory: StartProxy, slow_ollama: FakeOllama
) -> None:
    proxy = proxy_factory(upstream=slow_ollama.url, env={"PROXY_DRAIN_TIMEOUT": "300ms"})
    lines = _stream_until_cut(proxy, "/api/chat", CHAT)
    assert lines[-1] == b""  # the last line is complete
    objects = [json.loads(line) for line in lines if line]  # and so is every other
    assert objects[-1] == {"error": CUT_MESSAGE}
    assert not any(obj.get("done") for obj in objects)
    assert _exited(proxy) in (0, -signal.SIGTERM)
    cut = next(r for r in proxy.log_records() if r.get("msg", "").startswith("drain timeout"))
    assert cut["requests"] == 1


def test_at_the_deadline_an_sse_stream_ends_with_an_error_event_and_done(
    proxy_factory: StartProxy, slow_ollama: FakeOllama
) -> None:
    proxy = proxy_factory(upstream=slow_ollama.url, env={"PROXY_DRAIN_TIMEOUT": "300ms"})
    body = {**CHAT, "stream": True}
    lines = _stream_until_cut(proxy, "/v1/chat/completions", body)
    text = b"\n".join(lines)
    assert text.endswith(b"\n\n")  # the last event is complete
    events = [e for e in text.split(b"\n\n") if e.strip()]
    payloads = [e.removeprefix(b"data: ") for e in events]
    assert payloads[-1] == b"[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error == {
        "message": CUT_MESSAGE,
        "type": "api_error",
        "param": None,
        "code": "shutting_down",
    }
    for payload in payloads[:-2]:
        chunk = json.loads(payload)
        assert chunk["choices"][0]["finish_reason"] is None
    assert _exited(proxy) in (0, -signal.SIGTERM)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            "/api/generate",
            {"model": "llama3.2", "prompt": "SLOW {marker}", "stream": False},
            {"error": CUT_MESSAGE},
        ),
        (
            "/api/chat",
            {
                "model": "llama3.2",
                "messages": [{"role": "user", "content": "SLOW {marker}"}],
                "stream": False,
            },
            {"error": CUT_MESSAGE},
        ),
    ],
)
def test_at_the_deadline_a_request_waiting_for_ollama_gets_503_in_its_format(
    proxy_factory: StartProxy,
    slow_ollama: FakeOllama,
    marker: str,
    path: str,
    body: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    proxy = proxy_factory(upstream=slow_ollama.url, env={"PROXY_DRAIN_TIMEOUT": "0"})
    payload = json.loads(json.dumps(body).replace("{marker}", marker))
    replies: list[httpx.Response] = []

    def call() -> None:
        with proxy.client(timeout=WAIT) as client:
            replies.append(client.post(path, json=payload))

    thread = threading.Thread(target=call)
    thread.start()
    _wait_recorded(slow_ollama, marker)
    _terminate(proxy)
    thread.join(timeout=WAIT)
    assert len(replies) == 1
    assert replies[0].status_code == 503
    assert replies[0].json() == expected
    assert _exited(proxy) in (0, -signal.SIGTERM)
    # Ollama was told: the proxy closed its request.
    deadline = time.monotonic() + WAIT
    while slow_ollama.requests(marker)[0].get("stream_outcome") != "aborted":
        assert time.monotonic() < deadline, slow_ollama.requests(marker)
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("env", "yaml_text", "key", "problem"),
    [
        (
            {"PROXY_DRAIN_TIMEOUT": "soon"},
            "",
            "server.drain_timeout (from PROXY_DRAIN_TIMEOUT)",
            "duration",
        ),
        ({}, "server:\n  drain_timeout: -1\n", "server.drain_timeout", "at least 0"),
        ({}, "server:\n  drain_timeout: [1]\n", "server.drain_timeout", "must be a number"),
    ],
)
def test_bad_drain_timeouts_are_config_errors_naming_the_key(
    tmp_path: Path, env: dict[str, str], yaml_text: str, key: str, problem: str
) -> None:
    assert_serve_config_error(tmp_path, yaml_text, env, key, problem)
