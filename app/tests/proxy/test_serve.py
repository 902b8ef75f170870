"""``guard-proxy serve``: config errors exit non-zero naming the key; sd_notify; own endpoints."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from guard_proxy_testing.processes import Process, Proxy, clean_env, free_port
from guard_proxy_testing.prom import sample
from guard_proxy_testing.proxies import INPUT_TERM, StartProxy


def _serve(
    args: list[str], env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guard_proxy", *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("env", "yaml_text", "key"),
    [
        ({"PROXY_PORT": "eighty"}, "", "server.port (from PROXY_PORT)"),
        ({"OLLAMA_URL": "ftp://x"}, "", "ollama.url"),
        ({}, "server:\n  prot: 8080\n", "server.prot"),
        ({}, "guard:\n  fail_mode: maybe\n", "guard.fail_mode"),
        ({"REDIS_DB": "16"}, "", "redis.db"),
        ({"ACCESS_ALLOW": "10.0.0.0/33"}, "", "access.allow"),
        ({"CACHE_REQUIRE_REDIS": "1"}, "cache:\n  backend: memory\n", "cache.require_redis"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_config_errors_exit_non_zero_naming_the_key(
    tmp_path: Path, env: dict[str, str], yaml_text: str, key: str, command: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text)
    result = _serve(
        [command, "--config", str(config)],
        {**env, "PROXY_PORT": env.get("PROXY_PORT", str(free_port()))},
    )
    assert result.returncode != 0
    assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_config_error_exit_code_is_2(tmp_path: Path) -> None:
    result = _serve(["serve"], {"PROXY_PORT": "0"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: server.port (from PROXY_PORT): must be at least 1, got 0"
    ]


def test_serve_scanner_load_error_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("guard:\n  plugins:\n    - name: missing\n      path: no_such_module:build\n")
    result = _serve(["serve", "--config", str(config)], {"PROXY_PORT": str(free_port())})
    assert result.returncode == 2
    assert "missing" in result.stderr or "no_such_module" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_host_and_port_flags_override_env(tmp_path: Path) -> None:
    port, env_port = free_port(), free_port()
    argv = [sys.executable, "-m", "guard_proxy", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    env = {"PROXY_PORT": str(env_port), "PROXY_HOST": "0.0.0.0", "CACHE_BACKEND": "memory"}
    process = Process("guard-proxy serve", argv, env, tmp_path / "flags.log")
    try:
        process.wait_ready(f"http://127.0.0.1:{port}/health")
        assert f'"port":{port}' in process.log.read_text()
    finally:
        process.stop()


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_ready_and_stopping(tmp_path: Path, abstract: bool) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"guard-proxy-test-{free_port()}"
        sock.bind("\0" + name)
        notify_socket = "@" + name
    else:
        path = tmp_path / "notify.sock"
        sock.bind(str(path))
        notify_socket = str(path)
    sock.settimeout(30)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "guard_proxy", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env({"NOTIFY_SOCKET": notify_socket, "CACHE_BACKEND": "memory"}),
    )
    try:
        ready = sock.recv(256).decode()
        assert ready == "READY=1"
        # READY comes after the socket listens.
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        process.terminate()
        after = [sock.recv(4096).decode()]
        while after[-1] != "STOPPING=1":
            after.append(sock.recv(4096).decode())
        # Only STATUS lines (the state, then DRAINING on the way out) before STOPPING=1.
        assert all(m.startswith("STATUS=") for m in after[:-1]), after
        assert after[-2].startswith("STATUS=DRAINING · "), after
        # uvicorn re-raises SIGTERM after a graceful shutdown; systemd counts that as clean.
        assert process.wait(timeout=15) in (0, -15)
    finally:
        if process.poll() is None:
            process.kill()
        sock.close()


def test_health(client: httpx.Client, fake_ollama: object) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["uptime_s"] >= 0 and body["started_at"].endswith("Z")
    assert body["upstream"] == {"url": fake_ollama.url, "reachable": True}  # type: ignore[attr-defined]
    assert body["cache"] == {"enabled": True, "active_backend": "memory"}
    # Memory is what this instance is configured for: ready, not degraded.
    assert re.fullmatch(
        r"ready · cache memory · upstream ok · [\d,]+ req, [\d,]+ blocked", body["summary"]
    ), body["summary"]


def test_cache_health_and_stats(client: httpx.Client) -> None:
    health = client.get("/cache/health")
    assert health.status_code == 200
    assert health.json()["active_backend"] == "memory"
    stats = client.get("/cache/stats").json()
    for key in (
        "hits",
        "misses",
        "errors",
        "hit_rate",
        "sets",
        "active_backend",
        "failovers",
        "recoveries",
        "memory_entries",
    ):
        assert key in stats


def test_metrics_text_format(client: httpx.Client) -> None:
    client.post("/api/generate", json={"model": "llama3.2", "prompt": INPUT_TERM})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for name in (
        "guard_proxy_requests_total",
        "guard_proxy_blocks_total",
        "guard_proxy_scan_duration_seconds_bucket",
        "guard_proxy_cache_hits_total",
        "guard_proxy_cache_misses_total",
        "guard_proxy_cache_errors_total",
        "guard_proxy_cache_failovers_total",
        "guard_proxy_cache_recoveries_total",
    ):
        assert name in text
    assert sample(text, "guard_proxy_blocks_total", scanner="banned_substrings", direction="input")
    assert sample(text, "guard_proxy_cache_active_backend", backend="memory") == 1
    labels = {"route": "/api/generate", "method": "POST", "status": "400"}
    assert sample(text, "guard_proxy_requests_total", **labels)


def test_request_log_lines_never_hold_prompt_text(
    client: httpx.Client, proxy: Proxy, marker: str
) -> None:
    client.post(
        "/api/generate",
        json={"model": "llama3.2", "stream": False, "prompt": f"secret-ish prompt {marker}"},
    )
    client.post("/api/generate", json={"model": "llama3.2", "prompt": f"{marker} {INPUT_TERM}"})
    # The line is written once the response is sent: wait for it.
    deadline = time.monotonic() + 10
    blocked: list[dict[str, object]] = []
    while not blocked and time.monotonic() < deadline:
        blocked = [
            r
            for r in proxy.log_records()
            if r.get("logger") == "guard_proxy.access" and r.get("verdict") == "blocked_input"
        ]
        time.sleep(0.05)
    assert blocked
    last = blocked[-1]
    for key in ("route", "method", "status", "duration_ms", "client", "verdict", "cache"):
        assert key in last
    assert last["verdict"] == "blocked_input" and last["status"] == 400
    assert marker not in proxy.logs()
    assert INPUT_TERM not in proxy.logs()


def test_fail_open_and_closed_on_scanner_error(proxy_factory: StartProxy, tmp_path: Path) -> None:
    plugin = tmp_path / "broken_scanner.py"
    plugin.write_text(
        "class Broken:\n"
        "    name = 'broken'\n"
        "    window = 0\n"
        "    def scan(self, text):\n"
        "        if 'explode' in text:\n"
        "            raise RuntimeError('boom')\n"
        "        return None\n"
        "def build(options):\n"
        "    return Broken()\n"
    )
    plugins = {
        "guard": {
            "plugins": [{"name": "broken", "path": "broken_scanner:build", "directions": ["input"]}]
        }
    }
    env = {"PYTHONPATH": str(tmp_path)}
    closed = proxy_factory(config=plugins, env=env)
    opened = proxy_factory(
        config={**plugins, "guard": {**plugins["guard"], "fail_mode": "open"}}, env=env
    )
    body = {"model": "llama3.2", "prompt": "please explode", "stream": False}
    with closed.client() as c:
        response = c.post("/api/generate", json=body)
        assert response.status_code == 503
        assert "fail_mode" in response.json()["error"]
        v1 = c.post("/v1/completions", json={"model": "llama3.2", "prompt": "explode"})
        assert v1.status_code == 503
        assert v1.json()["error"]["code"] == "guard_unavailable"
    with opened.client() as c:
        assert c.post("/api/generate", json=body).status_code == 200
        assert (
            'guard_proxy_scanner_errors_total{direction="input",fail_mode="open"} 1'
            in c.get("/metrics").text
        )
    assert any(r.get("msg") == "scanner failed" for r in opened.log_records())
