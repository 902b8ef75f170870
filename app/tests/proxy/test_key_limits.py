"""Per-key limits shared through a real redis-server by two proxies, and their fallback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.keys import keys_config, new_key, write_keys_file
from guard_proxy_testing.proxies import StartApp, ndjson, sse_events
from guard_proxy_testing.redis_server import RedisServer

GENERATE = {"model": "llama3.2", "prompt": "ECHO:hello", "stream": False}
CHAT_V1 = {"model": "llama3.2", "messages": [{"role": "user", "content": "ECHO:hi"}]}
PREFIX = "gk-test:"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def redis_config(server: RedisServer) -> dict[str, Any]:
    assert server.password
    return {
        "redis": {
            "enabled": True,
            "host": server.host,
            "port": server.port,
            "password": server.password,
            "probe_interval": "0.2s",
            # Generous: on a loaded test host a slow reply must not look like an outage
            # (a failover would count the limits per process and change what is tested).
            "socket_timeout": "2s",
            "socket_connect_timeout": "2s",
        }
    }


def start_keyed(
    factory: StartApp,
    keys_file: Path,
    server: RedisServer,
    **extra: Any,
) -> InProcessProxy:
    config = {**keys_config(keys_file, prefix=PREFIX, **extra), **redis_config(server)}
    return factory(config)


def one_key(tmp_path: Path, limits: Mapping[str, int]) -> tuple[Path, str]:
    key = new_key()
    return write_keys_file(tmp_path / "keys.yml", {"team-a": (key, limits)}), key


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def shared_gauge(proxy: InProcessProxy) -> float:
    with proxy.client() as c:
        for line in c.get("/metrics").text.splitlines():
            if line.startswith("guard_proxy_key_limits_shared "):
                return float(line.split()[1])
    raise AssertionError("no guard_proxy_key_limits_shared in /metrics")


# ---------------------------------------------------------------- one budget, two proxies


def test_two_proxies_enforce_one_request_budget(
    app_factory: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    path, key = one_key(tmp_path, {"requests_per_minute": 7})
    proxies = [start_keyed(app_factory, path, redis_server) for _ in range(2)]
    clients = [p.client() for p in proxies]
    try:
        answers = []
        for i in range(16):
            c = clients[i % 2]
            if i % 4 < 2:
                answers.append(c.post("/api/generate", json=GENERATE, headers=bearer(key)))
            else:
                answers.append(c.post("/v1/chat/completions", json=CHAT_V1, headers=bearer(key)))
    finally:
        for c in clients:
            c.close()
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 7, statuses
    assert statuses.count(429) == 9, statuses
    assert statuses[:7] == [200] * 7
    for r in answers[7:]:
        assert 1 <= int(r.headers["retry-after"]) <= 60
        error = r.json()["error"]
        if r.request.url.path.startswith("/v1/"):
            assert error["code"] == "rate_limit_exceeded"
            assert "requests_per_minute is 7" in error["message"]
        else:
            assert "requests_per_minute is 7" in error
    assert int(redis_server.client().get(f"{PREFIX}team-a:rpm")) == 16
    assert 0 < redis_server.client().pttl(f"{PREFIX}team-a:rpm") <= 60_000


def test_tokens_are_counted_from_every_answer_format(
    app_factory: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    path, key = one_key(tmp_path, {})
    proxy = start_keyed(app_factory, path, redis_server)
    expected = 0
    with proxy.client() as c:
        h = bearer(key)
        whole = c.post("/api/generate", json=GENERATE, headers=h).json()
        expected += whole["prompt_eval_count"] + whole["eval_count"]
        lines = ndjson(c.post("/api/chat", headers=h, json={**CHAT_V1, "stream": True}).content)
        expected += lines[-1]["prompt_eval_count"] + lines[-1]["eval_count"]
        done = c.post("/v1/chat/completions", json=CHAT_V1, headers=h).json()
        expected += done["usage"]["prompt_tokens"] + done["usage"]["completion_tokens"]
        streamed = {**CHAT_V1, "stream": True, "stream_options": {"include_usage": True}}
        events = sse_events(c.post("/v1/chat/completions", json=streamed, headers=h).content)
        usage = httpx.Response(200, content=events[-2]).json()["usage"]
        expected += usage["prompt_tokens"] + usage["completion_tokens"]
        metrics = c.get("/metrics").text
    assert expected > 0
    stored = redis_server.client()
    # Added by a task of its own right after each answer.
    assert wait_for(lambda: int(stored.get(f"{PREFIX}team-a:tpd") or 0) == expected)
    assert int(stored.get(f"{PREFIX}team-a:tpm")) == expected
    counted = sum(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith('guard_proxy_key_tokens_total{direction="') and 'key="team-a"' in line
    )
    assert counted == expected


def test_a_spent_token_budget_is_429_on_every_proxy(
    app_factory: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    path, key = one_key(tmp_path, {"tokens_per_minute": 3, "tokens_per_day": 1000})
    first, second = (start_keyed(app_factory, path, redis_server) for _ in range(2))
    with first.client() as c:
        assert c.post("/api/generate", json=GENERATE, headers=bearer(key)).status_code == 200
    stored = redis_server.client()
    assert wait_for(lambda: int(stored.get(f"{PREFIX}team-a:tpm") or 0) >= 3)
    with second.client() as c:
        refused = c.post("/v1/chat/completions", json=CHAT_V1, headers=bearer(key))
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert "tokens_per_minute is 3" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_concurrent_streams_are_held_until_the_answer_ends(
    app_factory: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    path, key = one_key(tmp_path, {"concurrent_streams": 1})
    first, second = (start_keyed(app_factory, path, redis_server) for _ in range(2))
    slow = {"model": "llama3.2", "prompt": "SLOW please", "stream": True}
    with first.client() as c1, second.client() as c2:
        with c1.stream("POST", "/api/generate", json=slow, headers=bearer(key)) as r:
            assert r.status_code == 200
            lines = r.iter_lines()  # kept alive: a dropped iterator closes the stream
            next(lines)
            assert redis_server.client().zcard(f"{PREFIX}team-a:streams") == 1
            busy = c2.post("/api/generate", json=GENERATE, headers=bearer(key))
            assert shared_gauge(first) == 1 and shared_gauge(second) == 1, "not on Redis"
            assert busy.status_code == 429, busy.text
            assert "concurrent_streams is 1" in busy.json()["error"]
            # Routes that generate nothing take no stream slot.
            assert c2.get("/api/tags", headers=bearer(key)).status_code == 200
        assert wait_for(
            lambda: c2.post("/api/generate", json=GENERATE, headers=bearer(key)).status_code == 200
        ), "the stream's slot was not given back when its client left"


# ---------------------------------------------------------------- Redis away and back


def test_redis_stopped_mid_run_falls_back_per_proxy_and_comes_back(
    app_factory: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    path, key = one_key(tmp_path, {"requests_per_minute": 6})
    proxy = start_keyed(app_factory, path, redis_server, proxies=2)
    statuses: list[int] = []
    with proxy.client() as c:

        def ask() -> int:
            r = c.post("/api/generate", json=GENERATE, headers=bearer(key))
            assert r.status_code in (200, 429), r.text
            statuses.append(r.status_code)
            return r.status_code

        assert [ask() for _ in range(2)] == [200, 200]  # shared: 2 of 6 spent in Redis
        assert shared_gauge(proxy) == 1
        redis_server.kill()
        # Per proxy: 6 // 2 = 3 in this process's own window, counted afresh.
        assert [ask() for _ in range(5)] == [200, 200, 200, 429, 429]
        assert shared_gauge(proxy) == 0
        redis_server.restart()
        assert wait_for(lambda: shared_gauge(proxy) == 1), "limits never went back to Redis"
        # The restarted Redis has no counts: a full shared window again.
        assert [ask() for _ in range(7)] == [200] * 6 + [429]
    assert int(redis_server.client().get(f"{PREFIX}team-a:rpm")) == 7
    logs = proxy.logs()
    assert "limits counted in this process (limit // 2)" in logs
    assert "limits shared through redis again" in logs
    assert key not in logs


# ---------------------------------------------------------------- official clients


def test_official_clients_get_their_rate_limit_errors(
    app_factory: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    path, key = one_key(tmp_path, {"requests_per_minute": 2})
    proxy = start_keyed(app_factory, path, redis_server)
    ai = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
    oc = ollama.Client(host=proxy.url, headers={"X-API-Key": key})
    assert ai.chat.completions.create(model="llama3.2", messages=CHAT_V1["messages"])  # type: ignore[arg-type]
    assert oc.generate(model="llama3.2", prompt="ECHO:x").response == "x"
    with pytest.raises(openai.RateLimitError) as info:
        ai.chat.completions.create(model="llama3.2", messages=CHAT_V1["messages"])  # type: ignore[arg-type]
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after"]
    with pytest.raises(ollama.ResponseError) as err:
        oc.generate(model="llama3.2", prompt="ECHO:x")
    assert err.value.status_code == 429
    assert "requests_per_minute is 2" in err.value.error


# ---------------------------------------------------------------- guard-proxy keys


def run_keys_command(config: dict[str, Any], tmp_path: Path, *args: str) -> Any:
    import subprocess
    import sys

    import yaml
    from guard_proxy_testing.processes import clean_env

    path = tmp_path / "cli-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "guard_proxy", "keys", "--config", str(path), *args],
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_command_lists_names_limits_and_shared_usage(
    app_factory: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    key_a, key_b = new_key(), new_key()
    path = write_keys_file(
        tmp_path / "keys.yml",
        {
            "team-a": (key_a, {"requests_per_minute": 50, "tokens_per_day": 9000}),
            "team-b": (key_b, {}),
        },
    )
    proxy = start_keyed(app_factory, path, redis_server)
    with proxy.client() as c:
        for _ in range(3):
            assert c.post("/api/generate", json=GENERATE, headers=bearer(key_a)).status_code == 200
    stored = redis_server.client()
    assert wait_for(lambda: int(stored.get(f"{PREFIX}team-a:tpd") or 0) > 0)
    config = {**keys_config(path, prefix=PREFIX), **redis_config(redis_server)}
    result = run_keys_command(config, tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    rows = {row["name"]: row for row in listed["keys"]}
    assert rows["team-a"]["limits"]["requests_per_minute"] == 50
    assert rows["team-a"]["usage"]["requests_per_minute"] == 3
    assert rows["team-a"]["usage"]["tokens_per_day"] > 0
    assert rows["team-b"]["usage"]["requests_per_minute"] == 0
    table = run_keys_command(config, tmp_path)
    assert table.returncode == 0, table.stderr
    assert "team-a" in table.stdout and "3/50" in table.stdout
    for secret in (key_a, key_b, redis_server.password or "-"):
        assert secret not in table.stdout + table.stderr + result.stdout
    redis_server.kill()
    down = run_keys_command(config, tmp_path)
    assert down.returncode == 0, down.stderr
    assert "usage unknown: redis at" in down.stdout
    assert "?/50" in down.stdout


def test_a_redis_user_without_the_scripts_is_a_visible_fallback(
    app_factory: StartApp, redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    # A cache-only ACL user (as the redis role wrote it before client keys): no EVALSHA.
    server = redis_server_factory(
        extra_config=[
            "user cacheonly on >cache-only-password-123 ~guard:* -@all +@connection +get +set +ping"
        ]
    )
    path, key = one_key(tmp_path, {"requests_per_minute": 4})
    config = {
        **keys_config(path, prefix=PREFIX, proxies=2),
        **redis_config(server),
    }
    config["redis"].update(username="cacheonly", password="cache-only-password-123")
    proxy = app_factory(config)
    with proxy.client() as c:
        statuses = [
            c.post("/api/generate", json=GENERATE, headers=bearer(key)).status_code
            for _ in range(3)
        ]
    assert statuses == [200, 200, 429]  # 4 // 2 in this process
    assert shared_gauge(proxy) == 0
    assert "keys: redis did not run the limits script" in proxy.logs()
    assert "cache-only-password-123" not in proxy.logs()
