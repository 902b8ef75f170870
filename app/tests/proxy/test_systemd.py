"""The proxy under systemd: ``STATUS=`` lines, ``WATCHDOG=1`` pings and journal priorities.

A fake ``$NOTIFY_SOCKET`` (``guard_proxy_testing.notify``, a datagram socket this test binds)
receives
what systemd would; ``$JOURNAL_STREAM`` is pointed at the proxy's own stdout (its log file), as
systemd does when stdout is the journal. Everything runs for real: uvicorn, the fake Ollama,
redis-server.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from guard_proxy_testing.notify import NotifySocket
from guard_proxy_testing.processes import START_TIMEOUT, FakeOllama, Proxy, free_port, spawn_proxy
from guard_proxy_testing.proxies import INPUT_TERM, StartProxy
from guard_proxy_testing.redis_server import RedisServer


def _status(message: str) -> bool:
    return message.startswith("STATUS=")


def test_status_follows_redis_down_and_back(
    proxy_factory: StartProxy, redis_server: RedisServer, notify_socket: NotifySocket
) -> None:
    assert redis_server.password
    proxy = proxy_factory(
        config={"cache": {"backend": "auto"}},
        env={
            **redis_server.env(),
            "REDIS_PROBE_INTERVAL": "0.2",
            "NOTIFY_SOCKET": str(notify_socket.path),
        },
    )
    ready = notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    healthy = re.compile(
        rf"STATUS=ready · cache redis {re.escape(redis_server.address)} \(\d+\.\d ms\)"
        r" · upstream ok · [\d,]+ req, [\d,]+ blocked"
    )
    first = notify_socket.wait_for("a ready STATUS on redis", healthy.fullmatch, ready)

    redis_server.kill()
    down = notify_socket.wait_for(
        "a DEGRADED STATUS on memory",
        lambda m: m.startswith("STATUS=DEGRADED · cache memory since "),
        first,
    )
    line = notify_socket.seen()[down]
    assert redis_server.address in line and " · upstream ok · " in line, line
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        assert (
            client.post("/api/generate", json={"model": "m", "prompt": INPUT_TERM}).status_code
            == 400
        )
        # /health says the same as systemd, and stays 200 (liveness).
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["summary"].startswith("DEGRADED · cache memory since ")

    redis_server.restart()
    back = notify_socket.wait_for("ready on redis again", healthy.fullmatch, down)
    assert re.search(r"· [\d,]+ req, 1 blocked$", notify_socket.seen()[back]), notify_socket.seen()
    for message in notify_socket.seen():
        assert redis_server.password not in message
        assert INPUT_TERM not in message


def test_watchdog_pings_from_the_event_loop(
    proxy_factory: StartProxy, notify_socket: NotifySocket
) -> None:
    proxy_factory(env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"})
    ready = notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    # Pings start before READY=1 (a hanging start-up is caught too) and go on after it.
    assert "WATCHDOG=1" in notify_socket.seen()[:ready], notify_socket.seen()
    after = notify_socket.wait_for("WATCHDOG=1 after READY", lambda m: m == "WATCHDOG=1", ready)
    notify_socket.wait_for("another WATCHDOG=1", lambda m: m == "WATCHDOG=1", after + 1)


def test_no_watchdog_for_another_pid(
    proxy_factory: StartProxy, notify_socket: NotifySocket
) -> None:
    proxy = proxy_factory(
        env={
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "200000",
            "WATCHDOG_PID": "1",  # the variables were meant for another process
        }
    )
    notify_socket.wait_for("a STATUS line", _status)
    proxy.stop()
    notify_socket.wait_for("STOPPING=1", lambda m: m == "STOPPING=1")
    assert "WATCHDOG=1" not in notify_socket.seen()


def _start_logging_proxy(
    tmp_path: Path, fake_ollama: FakeOllama, journal: str | None
) -> tuple[Proxy, Path]:
    """A proxy whose Redis refuses (a WARNING at start) and that logs requests (INFO)."""
    log = tmp_path / "proxy.log"
    log.touch()
    env = {
        "OLLAMA_URL": fake_ollama.url,
        "PROXY_PORT": str(free_port()),
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(free_port()),
    }
    if journal is not None:
        st = os.stat(log)
        env["JOURNAL_STREAM"] = journal or f"{st.st_dev}:{st.st_ino}"
    proxy = spawn_proxy(log, env)
    with proxy.client() as client:
        assert client.get("/api/version").status_code == 200
    return proxy, log


def _lines_when(log: Path, predicate: Callable[[list[str]], bool]) -> list[str]:
    deadline = time.monotonic() + START_TIMEOUT
    lines = log.read_text().splitlines()
    while not predicate(lines) and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = log.read_text().splitlines()
    return lines


def _has_access_line(lines: list[str]) -> bool:
    return any('"logger":"guard_proxy.access"' in line for line in lines)


def test_journal_priority_prefixes(tmp_path: Path, fake_ollama: FakeOllama) -> None:
    proxy, log = _start_logging_proxy(tmp_path, fake_ollama, journal="")
    try:
        lines = _lines_when(log, _has_access_line)
    finally:
        proxy.stop()
    assert lines
    by_level: dict[str, set[str]] = {}
    for line in lines:
        match = re.match(r"<(\d)>(\{.*\})$", line)
        assert match, f"a line without a priority prefix: {line!r}"
        level = json.loads(match.group(2))["level"]
        by_level.setdefault(level, set()).add(match.group(1))
    assert by_level["info"] == {"6"}, by_level
    assert by_level["warning"] == {"4"}, by_level  # the Redis failover line
    assert any(line.startswith("<4>") and "serving from memory" in line for line in lines), lines


@pytest.mark.parametrize("journal", [None, "1:2"], ids=["no JOURNAL_STREAM", "other stream"])
def test_no_prefix_unless_stdout_is_the_journal(
    tmp_path: Path, fake_ollama: FakeOllama, journal: str | None
) -> None:
    proxy, log = _start_logging_proxy(tmp_path, fake_ollama, journal=journal)
    try:
        lines = _lines_when(log, _has_access_line)
    finally:
        proxy.stop()
    assert _has_access_line(lines)
    levels = {json.loads(line)["level"] for line in lines if line.startswith("{")}
    assert {"info", "warning"} <= levels
    assert all(line.startswith("{") for line in lines), lines
