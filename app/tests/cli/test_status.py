"""``guard-proxy status`` against a live instance (real uvicorn, fake Ollama, real Redis).

States: healthy on Redis, fallen back to memory (Redis killed, refused at start), back on
Redis, memory by configuration, upstream down, instance down. Exit codes 0/1/2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from guard_proxy_testing.cli import Result, RunCli, generate, wait_until
from guard_proxy_testing.processes import Proxy
from guard_proxy_testing.redis_server import RedisServer, free_port

from guard_proxy import __version__

BANNED = "forbidden-zebra"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A YAML config with a banned substring, so blocks can be provoked and counted."""
    path = tmp_path / "guard-proxy.yaml"
    path.write_text(
        "guard:\n"
        "  input:\n"
        "    banned_substrings:\n"
        f"      patterns: [{BANNED}]\n"
        "cache:\n"
        "  prefix: 'gp-test:'\n"
    )
    return path


def status(run_cli: RunCli, instance: Proxy, *args: str) -> Result:
    return run_cli("status", *args, env=instance.env)


def row(result: Result, name: str) -> str:
    """The text of one ``name  value`` row of the status screen."""
    match = re.search(rf"^  {re.escape(name)} +(.*)$", result.stdout, re.M)
    assert match, f"no {name!r} row in:\n{result}"
    return match.group(1)


def test_healthy_on_redis(
    run_cli: RunCli,
    secrets: list[str],
    redis_server: RedisServer,
    start_proxy: Callable[..., Proxy],
    config_file: Path,
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    instance = start_proxy({**redis_server.env(), "GUARD_PROXY_CONFIG": str(config_file)})
    assert generate(instance, "hello there") == 200
    assert generate(instance, "hello there") == 200  # a hit
    assert generate(instance, f"say {BANNED} please") == 400
    with redis_server.client() as client:
        client.set("unrelated:key", "1")

    result = status(run_cli, instance)
    assert result.returncode == 0, str(result)
    first, second = result.stdout.splitlines()[:2]
    # The instance's own summary line first (the same as systemd's Status:), then the screen.
    assert re.fullmatch(
        rf"ready · cache redis {re.escape(redis_server.address)} \(\d+\.\d ms\) · upstream ok"
        r" · [\d,]+ req, 1 blocked",
        first,
    ), str(result)
    assert second == f"guard-proxy at {instance.url}: HEALTHY", str(result)
    assert row(result, "version").startswith(f"{__version__}, "), str(result)
    assert "reachable" in row(result, "upstream") and "UNREACHABLE" not in result.stdout
    assert row(result, "cache") == "configured auto, active redis"
    redis_row = row(result, "redis")
    assert redis_server.address in redis_row and "connected" in redis_row, str(result)
    assert re.search(r"PING \d+\.\d+ ms", redis_row), str(result)
    keys = row(result, "redis keys")
    assert re.match(r"\d+ under 'gp-test:'", keys), str(result)
    assert int(keys.split()[0]) >= 1  # the cached verdicts, not the unrelated key
    assert "used, maxmemory" in row(result, "redis memory")
    hits = re.match(r"\d+\.\d % \((\d+) hits, (\d+) misses", row(result, "hit rate"))
    assert hits and int(hits.group(1)) >= 1 and int(hits.group(2)) >= 1, str(result)
    assert row(result, "failovers") == "0 failovers, 0 recoveries", str(result)
    assert "input banned_substrings 1" in row(result, "blocks"), str(result)
    assert redis_server.password not in result.output

    as_json = status(run_cli, instance, "--json")
    assert as_json.returncode == 0, str(as_json)
    doc = json.loads(as_json.stdout)
    assert doc["state"] == "healthy" and doc["active_backend"] == "redis"
    assert doc["blocks"] == {"input banned_substrings": 1}


def test_falls_back_to_memory_and_recovers(
    run_cli: RunCli,
    secrets: list[str],
    redis_server: RedisServer,
    start_proxy: Callable[..., Proxy],
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    instance = start_proxy(redis_server.env())
    assert status(run_cli, instance).returncode == 0

    redis_server.kill()
    assert generate(instance, "while redis is gone") == 200  # requests still work
    results: list[Result] = []

    def degraded() -> bool:
        results.append(status(run_cli, instance))
        return results[-1].returncode == 1

    wait_until(degraded, "status to report the memory fallback")
    result = results[-1]
    first, second = result.stdout.splitlines()[:2]
    assert first.startswith("DEGRADED · cache memory since "), str(result)
    # A pooled connection may see the kill first ("lost"), a new one is refused.
    assert re.search(
        rf"\({re.escape(redis_server.address)} connection (refused|lost)\) · upstream ok", first
    ), str(result)
    assert second == f"guard-proxy at {instance.url}: DEGRADED", str(result)
    assert "fell back to memory" in result.stdout, str(result)
    assert row(result, "cache") == "configured auto, active memory"
    assert "NOT CONNECTED" in row(result, "redis"), str(result)
    assert row(result, "redis error"), str(result)  # why, in the instance's words
    assert re.match(r"1 failover, 0 recoveries; last: failover 20", row(result, "failovers"))

    redis_server.restart()
    results.clear()
    wait_until(lambda: not degraded() and results[-1].returncode == 0, "status back to healthy")
    result = results[-1]
    assert row(result, "cache") == "configured auto, active redis"
    assert row(result, "failovers").startswith("1 failover, 1 recovery; last: recovery 20")


def test_redis_refused_at_start(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    port = free_port()
    instance = start_proxy({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port)})
    result = status(run_cli, instance)
    assert result.returncode == 1, str(result)
    assert "memory" in row(result, "cache"), str(result)
    assert f"127.0.0.1:{port}" in row(result, "redis"), str(result)


def test_memory_by_configuration_is_healthy(
    run_cli: RunCli, start_proxy: Callable[..., Proxy]
) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory"})
    result = status(run_cli, instance)
    assert result.returncode == 0, str(result)
    assert row(result, "cache") == "configured memory, active memory"
    assert row(result, "redis") == "not used"


def test_redis_disabled_is_healthy(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"REDIS_ENABLED": "false", "REDIS_PORT": str(free_port())})
    result = status(run_cli, instance)
    assert result.returncode == 0, str(result)
    assert row(result, "redis") == "not used"


def test_upstream_down_is_degraded(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy(
        {"CACHE_BACKEND": "memory", "OLLAMA_URL": f"http://127.0.0.1:{free_port()}"}
    )
    result = status(run_cli, instance)
    assert result.returncode == 1, str(result)
    assert "UNREACHABLE" in row(result, "upstream"), str(result)
    url = instance.env["OLLAMA_URL"]
    assert f"  ! not ready: upstream {url} not reachable" in result.stdout.splitlines(), str(result)
    doc = json.loads(status(run_cli, instance, "--json").stdout)
    assert doc["ready"]["status"] == "not ready"
    assert doc["ready"]["checks"]["upstream"] == {"ok": False, "url": url}


def test_not_ready_when_required_redis_is_gone(
    run_cli: RunCli,
    secrets: list[str],
    redis_server: RedisServer,
    start_proxy: Callable[..., Proxy],
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    instance = start_proxy({**redis_server.env(), "CACHE_REQUIRE_REDIS": "true"})
    healthy = status(run_cli, instance)
    assert healthy.returncode == 0, str(healthy)
    assert "not ready" not in healthy.stdout
    assert json.loads(status(run_cli, instance, "--json").stdout)["ready"]["status"] == "ready"

    redis_server.kill()
    results: list[Result] = []

    def not_ready() -> bool:
        results.append(status(run_cli, instance))
        return "not ready" in results[-1].stdout

    wait_until(not_ready, "status to report the instance not ready")
    result = results[-1]
    assert result.returncode == 1, str(result)
    reason = next(line for line in result.stdout.splitlines() if "not ready" in line)
    assert reason.startswith("  ! not ready: redis required but "), str(result)
    assert redis_server.address in reason, str(result)


def test_instance_down(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory"})
    assert status(run_cli, instance).returncode == 0
    instance.stop()
    result = status(run_cli, instance)
    assert result.returncode == 2, str(result)
    assert result.stdout.startswith(f"guard-proxy at {instance.url}: DOWN"), str(result)
    # httpx's own reason, as it words it (no rewording into urllib's)
    assert re.search(
        r"instance not answering: \[Errno \d+\] Connection refused$", result.stdout, re.M
    ), str(result)
    as_json = status(run_cli, instance, "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["state"] == "down"


def test_url_from_wildcard_listen_address(
    run_cli: RunCli, start_proxy: Callable[..., Proxy]
) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory", "PROXY_HOST": "0.0.0.0"})
    result = status(run_cli, instance)
    assert result.returncode == 0, str(result)
    assert result.stdout.splitlines()[1].startswith(
        f"guard-proxy at http://127.0.0.1:{instance.env['PROXY_PORT']}"
    ), str(result)


def test_url_option_wins_over_config(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory"})
    env = {"PROXY_PORT": str(free_port())}  # the config points elsewhere
    assert run_cli("status", env=env).returncode == 2
    result = run_cli("status", "--url", instance.url + "/", env=env)
    assert result.returncode == 0, str(result)


def test_invalid_config_without_url(run_cli: RunCli) -> None:
    result = run_cli("status", env={"PROXY_PORT": "not-a-port"})
    assert result.returncode == 2, str(result)
    assert "PROXY_PORT" in result.stderr or "server.port" in result.stderr, str(result)


def test_version_and_uptime(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory"})
    result = status(run_cli, instance)
    assert result.returncode == 0, str(result)
    version = row(result, "version")
    assert re.match(
        rf"{re.escape(__version__)}, up (\d+[dhms] ?)+ \(since 20\d\d-\d\d-\d\d [0-9:]+ UTC\)$",
        version,
    ), str(result)


def test_refused_by_the_allow_list(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory", "ACCESS_ALLOW": "192.0.2.0/24"})
    result = status(run_cli, instance)
    assert result.returncode == 2, str(result)
    assert "HTTP 403" in result.stdout and "access.allow" in result.stdout, str(result)


def test_cache_disabled_is_healthy(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"CACHE_ENABLED": "false", "REDIS_PORT": str(free_port())})
    result = status(run_cli, instance)
    assert result.returncode == 0, str(result)
    assert row(result, "cache") == "disabled", str(result)
    assert "redis" not in re.findall(r"^  (\S+)", result.stdout, re.M)


def test_frozen_instance_is_down(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory"}, process=True)
    pid = instance.process.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        result = status(run_cli, instance, "--timeout", "1")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.returncode == 2, str(result)
    assert "instance not answering: no answer within 1 s" in result.stdout, str(result)


def test_url_that_is_not_http_is_down_in_our_words(run_cli: RunCli) -> None:
    result = run_cli("status", "--url", "ftp://127.0.0.1/")
    assert result.returncode == 2, str(result)
    assert "not an http:// or https:// URL: 'ftp://127.0.0.1/" in result.stdout, str(result)
    result = run_cli("status", "--url", "http:///status")
    assert result.returncode == 2, str(result)
    assert "no host in 'http:///status/" in result.stdout, str(result)


def test_server_closing_without_an_answer_is_down(run_cli: RunCli) -> None:
    """Something that accepts and hangs up: httpx's own reason is shown, not urllib's."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def hang_up() -> None:
            for _ in range(4):  # status asks several endpoints
                with contextlib.suppress(OSError):
                    conn, _ = server.accept()
                    conn.recv(4096)
                    conn.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        result = run_cli("status", "--url", f"http://127.0.0.1:{port}", "--timeout", "2")
    assert result.returncode == 2, str(result)
    assert "Server disconnected without sending a response" in result.stdout, str(result)
