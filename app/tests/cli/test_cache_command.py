"""``guard-proxy cache stats|clear`` against a live instance with a real Redis."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from guard_proxy_testing.cli import RunCli, generate
from guard_proxy_testing.processes import ADMIN_TOKEN, Proxy
from guard_proxy_testing.redis_server import RedisServer


def test_stats(
    run_cli: RunCli,
    secrets: list[str],
    redis_server: RedisServer,
    start_proxy: Callable[..., Proxy],
) -> None:
    assert redis_server.password
    secrets.extend([redis_server.password, ADMIN_TOKEN])
    instance = start_proxy(redis_server.env())
    assert generate(instance, "count me") == 200
    result = run_cli("cache", "stats", env=instance.env)
    assert result.returncode == 0, str(result)
    assert result.stdout.startswith(f"cache stats of {instance.url}")
    assert re.search(r"^  active_backend +redis$", result.stdout, re.M), str(result)
    assert re.search(r"^  hit_rate +\d\.\d{4} \(\d+\.\d %\)$", result.stdout, re.M), str(result)
    assert re.search(r"^  redis\.keys +[1-9]\d*$", result.stdout, re.M), str(result)
    assert re.search(r"^  redis\.used_memory +\d+ \(", result.stdout, re.M), str(result)

    as_json = run_cli("cache", "stats", "--json", env=instance.env)
    assert as_json.returncode == 0, str(as_json)
    doc = json.loads(as_json.stdout)
    assert doc["active_backend"] == "redis" and doc["misses"] >= 1


def test_clear_with_the_admin_token(
    run_cli: RunCli,
    secrets: list[str],
    redis_server: RedisServer,
    start_proxy: Callable[..., Proxy],
) -> None:
    assert redis_server.password
    secrets.extend([redis_server.password, ADMIN_TOKEN])
    instance = start_proxy({**redis_server.env(), "CACHE_PREFIX": "gp-clear:"})
    assert generate(instance, "something to cache") == 200
    with redis_server.client() as client:
        client.set("other:keep", "1")
        assert client.keys("gp-clear:*")
    result = run_cli("cache", "clear", env=instance.env)
    assert result.returncode == 0, str(result)
    assert re.match(
        rf"cache cleared on {re.escape(instance.url)}: [1-9]\d* cached verdicts deleted",
        result.stdout,
    )
    with redis_server.client() as client:
        assert client.keys("gp-clear:*") == []
        assert client.get("other:keep") == "1"


def test_clear_with_the_token_from_a_file(
    run_cli: RunCli, secrets: list[str], tmp_path: Path, start_proxy: Callable[..., Proxy]
) -> None:
    secrets.append(ADMIN_TOKEN)
    instance = start_proxy({"CACHE_BACKEND": "memory"})
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    env = {k: v for k, v in instance.env.items() if k != "GUARD_PROXY_ADMIN_TOKEN"}
    env["GUARD_PROXY_ADMIN_TOKEN_FILE"] = str(token_file)
    result = run_cli("cache", "clear", env=env)
    assert result.returncode == 0, str(result)


def test_clear_refused(
    run_cli: RunCli, secrets: list[str], start_proxy: Callable[..., Proxy]
) -> None:
    wrong = "wrong-" + ADMIN_TOKEN[::-1]
    secrets.extend([ADMIN_TOKEN, wrong])
    instance = start_proxy({"CACHE_BACKEND": "memory"})
    result = run_cli("cache", "clear", env={**instance.env, "GUARD_PROXY_ADMIN_TOKEN": wrong})
    assert result.returncode == 1, str(result)
    assert re.match(
        r"error: cache clear not allowed \(HTTP 40[13]\): the instance refused", result.stderr
    ), str(result)
    no_token = {k: v for k, v in instance.env.items() if k != "GUARD_PROXY_ADMIN_TOKEN"}
    result = run_cli("cache", "clear", env=no_token)
    assert result.returncode == 1, str(result)
    assert "no admin token is configured here" in result.stderr, str(result)


def test_instance_down(run_cli: RunCli, start_proxy: Callable[..., Proxy]) -> None:
    instance = start_proxy({"CACHE_BACKEND": "memory"})
    instance.stop()
    for action in ("stats", "clear"):
        result = run_cli("cache", action, env=instance.env)
        assert result.returncode == 2, str(result)
        # httpx's own reason, as it words it (no rewording into urllib's)
        assert re.search(
            r"not answering: \[Errno \d+\] Connection refused$", result.stderr, re.M
        ), str(result)


def test_clear_when_the_instance_has_no_admin_token(
    run_cli: RunCli, secrets: list[str], start_proxy: Callable[..., Proxy]
) -> None:
    secrets.append(ADMIN_TOKEN)
    instance = start_proxy({"CACHE_BACKEND": "memory", "GUARD_PROXY_ADMIN_TOKEN": ""})
    result = run_cli("cache", "clear", env={**instance.env, "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN})
    assert result.returncode == 1, str(result)
    assert "(HTTP 403): the instance says: admin routes are disabled" in result.stderr, str(result)
