"""Client keys (``access.keys``): who may use the proxied routes, in each route's error format."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.keys import keys_config, new_key, write_keys_file
from guard_proxy_testing.processes import assert_serve_config_error
from guard_proxy_testing.proxies import StartApp, StartProxy

GENERATE = {"model": "llama3.2", "prompt": "ECHO:hello", "stream": False}
CHAT_V1 = {"model": "llama3.2", "messages": [{"role": "user", "content": "ECHO:hi"}]}

KEY_A = new_key()
KEY_B = new_key()


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.yml"
    return write_keys_file(path, {"team-a": (KEY_A, {}), "team-b": (KEY_B, {})})


@pytest.fixture(scope="module")
def keyed(app_factory: StartApp, keys_file: Path) -> InProcessProxy:
    config = {**keys_config(keys_file, reload_interval="0.2s"), "redis": {"enabled": False}}
    return app_factory(config)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ---------------------------------------------------------------- accepted keys


def test_bearer_and_header_keys_are_accepted(keyed: InProcessProxy) -> None:
    with keyed.client() as c:
        r = c.post("/api/generate", json=GENERATE, headers=bearer(KEY_A))
        assert r.status_code == 200, r.text
        assert r.json()["response"] == "hello"
        r = c.post("/api/generate", json=GENERATE, headers={"X-API-Key": KEY_B})
        assert r.status_code == 200, r.text
        r = c.post("/v1/chat/completions", json=CHAT_V1, headers=bearer(KEY_B))
        assert r.status_code == 200, r.text
        assert c.get("/api/tags", headers=bearer(KEY_A)).status_code == 200


def test_own_endpoints_need_no_key(keyed: InProcessProxy) -> None:
    with keyed.client() as c:
        assert c.get("/health").status_code == 200
        assert c.get("/metrics").status_code == 200


# ---------------------------------------------------------------- refusals


def test_missing_key_is_401_in_each_routes_format(keyed: InProcessProxy) -> None:
    with keyed.client() as c:
        native = c.post("/api/generate", json=GENERATE)
        v1 = c.post("/v1/chat/completions", json=CHAT_V1)
    assert native.status_code == 401
    assert native.headers["www-authenticate"].startswith("Bearer")
    assert isinstance(native.json()["error"], str)
    assert "missing API key" in native.json()["error"]
    assert v1.status_code == 401
    error = v1.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert "missing API key" in error["message"]


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        ({"Authorization": "Bearer not-a-key-we-know"}, 401, "invalid API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "malformed Authorization"),
        ({"Authorization": "Bearer"}, 401, "empty API key"),
        ({"Authorization": ""}, 401, "malformed Authorization"),
        ({"Authorization": "Bearer two words"}, 401, "malformed Authorization"),
        ({"X-API-Key": ""}, 401, "empty API key"),
        ({"X-API-Key": "wrong"}, 401, "invalid API key"),
    ],
)
def test_bad_keys_are_clear_401s(
    keyed: InProcessProxy, headers: dict[str, str], status: int, words: str
) -> None:
    with keyed.client() as c:
        r = c.post("/api/generate", json=GENERATE, headers=headers)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


@pytest.mark.parametrize("param", ["api_key", "key", "token", "access_token"])
def test_a_key_in_the_query_string_is_400_even_with_a_good_header(
    keyed: InProcessProxy, param: str
) -> None:
    with keyed.client() as c:
        r = c.post(f"/v1/chat/completions?{param}={KEY_A}", json=CHAT_V1, headers=bearer(KEY_A))
    assert r.status_code == 400
    assert "not accepted in the URL" in r.json()["error"]["message"]


def test_keys_never_reach_logs_or_metrics_but_names_do(keyed: InProcessProxy) -> None:
    wrong = new_key()
    with keyed.client() as c:
        assert c.post("/api/generate", json=GENERATE, headers=bearer(KEY_A)).status_code == 200
        assert c.post("/api/generate", json=GENERATE, headers=bearer(wrong)).status_code == 401
        metrics = c.get("/metrics").text
    for secret in (KEY_A, KEY_B, wrong):
        assert secret not in keyed.logs()
        assert secret not in metrics
    assert 'guard_proxy_key_requests_total{key="team-a"}' in metrics
    assert 'guard_proxy_key_auth_failures_total{reason="wrong"}' in metrics
    records = [r for r in keyed.log_records() if r.get("key") == "team-a"]
    assert records and records[-1]["route"] == "/api/generate"
    refused = [r for r in keyed.log_records() if r.get("status") == 401]
    assert refused and {r["route"] for r in refused} == {"unauthorized"}
    assert all("key" not in r for r in refused)


# ---------------------------------------------------------------- revocation


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_revoking_and_adding_keys_needs_no_restart(
    proxy_factory: StartProxy, tmp_path: Path
) -> None:
    path = write_keys_file(tmp_path / "keys.yml", {"team-a": (KEY_A, {})})
    proxy = proxy_factory(
        {**keys_config(path, reload_interval="0.2s"), "redis": {"enabled": False}}
    )
    added = new_key()
    with proxy.client() as c:

        def status(key: str) -> int:
            return c.post("/api/generate", json=GENERATE, headers=bearer(key)).status_code

        assert status(KEY_A) == 200
        assert status(added) == 401
        write_keys_file(path, {"team-c": (added, {})})
        assert wait_for(lambda: status(KEY_A) == 401), "the revoked key still works"
        assert status(added) == 200
        pid = proxy.process.proc.pid
        # A broken file keeps the keys in force and says why in the log.
        path.write_text("keys: [{name: 'x'}]\n")
        assert wait_for(lambda: "keeping the previous 1 keys" in proxy.logs())
        assert status(added) == 200
        assert proxy.process.running and proxy.process.proc.pid == pid  # never restarted


# ---------------------------------------------------------------- floods


def test_a_flood_of_wrong_keys_is_rate_limited_per_address(
    app_factory: StartApp, keys_file: Path
) -> None:
    config = {
        **keys_config(keys_file, failed_attempts_per_minute=5),
        "redis": {"enabled": False},
    }
    proxy = app_factory(config)
    with proxy.client() as c:
        answers = [
            c.post("/api/generate", json=GENERATE, headers=bearer(new_key())).status_code
            for _ in range(5)
        ]
        assert answers == [401] * 5
        flooded = c.post("/v1/chat/completions", json=CHAT_V1, headers=bearer(new_key()))
        assert flooded.status_code == 429
        assert int(flooded.headers["retry-after"]) >= 1
        assert flooded.json()["error"]["code"] == "rate_limit_exceeded"
        # While the address is held back even a good key waits: nothing is learnt from it.
        assert c.post("/api/generate", json=GENERATE, headers=bearer(KEY_A)).status_code == 429
        assert c.get("/health").status_code == 200


# ---------------------------------------------------------------- official clients


def test_openai_client_gets_its_authentication_error(keyed: InProcessProxy) -> None:
    good = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY_A, max_retries=0)
    reply = good.chat.completions.create(model="llama3.2", messages=CHAT_V1["messages"])  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "hi"
    bad = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="ollama", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="llama3.2", messages=CHAT_V1["messages"])  # type: ignore[arg-type]
    assert info.value.code == "invalid_api_key"


def test_ollama_client_with_its_header_and_without(keyed: InProcessProxy) -> None:
    good = ollama.Client(host=keyed.url, headers={"X-API-Key": KEY_A})
    assert good.generate(model="llama3.2", prompt="ECHO:hey").response == "hey"
    streamed = good.chat(
        model="llama3.2", stream=True, messages=[{"role": "user", "content": "ECHO:flow"}]
    )
    assert "".join(c.message.content or "" for c in streamed) == "flow"
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=keyed.url).generate(model="llama3.2", prompt="ECHO:hey")
    assert info.value.status_code == 401
    assert "missing API key" in info.value.error


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("yaml_text", "key", "problem"),
    [
        ("access: {keys: {enabled: true}}\n", "access.keys.file", "is required"),
        (
            "access: {keys: {enabled: true, file: /nonexistent/keys.yml}}\n",
            "access.keys.file",
            "cannot read",
        ),
        (
            "access: {keys: {header: 'Authorization'}}\n",
            "access.keys.header",
            "other than Authorization",
        ),
        ("access: {keys: {proxies: 0}}\n", "access.keys.proxies", "at least 1"),
    ],
)
def test_bad_key_settings_refuse_start_up(
    tmp_path: Path, yaml_text: str, key: str, problem: str
) -> None:
    assert_serve_config_error(tmp_path, yaml_text, {}, key, problem)


@pytest.mark.parametrize(
    ("limits", "where"),
    [
        ({"requests_per_minute": 0}, "keys[0] (team-a).limits.requests_per_minute"),
        ({"tokens_per_day": -5}, "keys[0] (team-a).limits.tokens_per_day"),
        ({"tokens_per_day": "lots"}, "keys[0] (team-a).limits.tokens_per_day"),
        ({"requests_per_hour": 5}, "keys[0] (team-a).limits.requests_per_hour"),
    ],
)
def test_a_limit_that_is_not_a_positive_integer_refuses_start_up(
    tmp_path: Path, limits: dict[str, object], where: str
) -> None:
    path = write_keys_file(tmp_path / "keys.yml", {"team-a": (KEY_A, limits)})  # type: ignore[dict-item]
    yaml_text = f"access: {{keys: {{enabled: true, file: {path}}}}}\n"
    assert_serve_config_error(tmp_path, yaml_text, {}, "access.keys.file", where)
    assert KEY_A not in path.read_text()


def test_check_config_counts_the_keys(keys_file: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text(f"access: {{keys: {{enabled: true, file: {keys_file}}}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "guard_proxy", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"client keys on (2 in {keys_file})" in result.stdout


def test_requests_without_keys_pass_when_keys_are_off(client: httpx.Client) -> None:
    assert client.post("/api/generate", json=GENERATE).status_code == 200
