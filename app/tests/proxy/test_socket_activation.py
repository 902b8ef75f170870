"""Socket activation: ``serve`` takes the socket systemd passes (fd 3) and binds only without one.

The test owns the listening socket, as ``guard-proxy.socket`` would, and starts real proxies
on it (``guard_proxy_testing.activation``). While no proxy runs, the kernel still completes
connections into the socket's backlog: a restart delays requests instead of refusing them.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from guard_proxy_testing.activation import listening_socket, spawn_activated_proxy
from guard_proxy_testing.processes import ADMIN_TOKEN, FakeOllama, free_port, spawn_proxy

from guard_proxy.proxy.listen import inherited_socket

WAIT = 60.0


@pytest.fixture
def activation_socket() -> Iterator[socket.socket]:
    sock = listening_socket()
    try:
        yield sock
    finally:
        sock.close()


def _env(fake_ollama: FakeOllama, **extra: str) -> dict[str, str]:
    return {
        "OLLAMA_URL": fake_ollama.url,
        "CACHE_BACKEND": "memory",
        "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN,
        "PROXY_PORT": str(free_port()),  # never used: the inherited socket wins
        **extra,
    }


def _listening(records: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in records if r.get("msg") == "listening")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_serves_the_inherited_socket(
    fake_ollama: FakeOllama, activation_socket: socket.socket, tmp_path: Path
) -> None:
    env = _env(fake_ollama)
    proxy = spawn_activated_proxy(activation_socket, tmp_path / "proxy.log", env)
    try:
        with proxy.client() as client:
            answer = client.post(
                "/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["done"] is True
        line = _listening(proxy.log_records())
        assert line["socket"] == "systemd"
        assert line["port"] == activation_socket.getsockname()[1]
        assert _refused(int(env["PROXY_PORT"]))  # server.port was not bound
    finally:
        proxy.stop()


def test_without_a_passed_socket_serve_binds_its_port(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    # LISTEN_* meant for another process (LISTEN_PID is not ours) is not taken.
    env = _env(fake_ollama, LISTEN_FDS="1", LISTEN_PID="1")
    proxy = spawn_proxy(tmp_path / "proxy.log", env)
    try:
        line = _listening(proxy.log_records())
        assert line["socket"] == "bound"
        assert line["port"] == int(env["PROXY_PORT"])
    finally:
        proxy.stop()


def test_a_restart_on_the_same_socket_delays_requests_instead_of_refusing_them(
    fake_ollama: FakeOllama, activation_socket: socket.socket, tmp_path: Path
) -> None:
    env = _env(fake_ollama)
    first = spawn_activated_proxy(activation_socket, tmp_path / "first.log", env)
    with first.client() as client:
        assert client.get("/health").status_code == 200
    first.process.proc.send_signal(signal.SIGTERM)
    assert first.process.proc.wait(timeout=WAIT) in (0, -signal.SIGTERM)

    # No proxy runs now. These clients connect into the backlog and wait there.
    results: list[Any] = []

    def call(n: int) -> None:
        try:
            reply = httpx.post(
                f"{first.url}/api/generate",
                json={"model": "llama3.2", "prompt": f"hi {n}", "stream": False},
                timeout=WAIT,
            )
            results.append(reply.status_code)
        except httpx.HTTPError as exc:
            results.append(exc)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    second = spawn_activated_proxy(activation_socket, tmp_path / "second.log", env, wait=False)
    try:
        for thread in threads:
            thread.join(timeout=WAIT)
        assert results == [200] * 8, results
        assert _listening(second.log_records())["socket"] == "systemd"
    finally:
        second.stop()


def test_the_listen_variables_are_taken_once_and_removed() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDNAMES": "x"}
    assert inherited_socket(env) is None
    assert env == {}  # a child never takes them for its own
