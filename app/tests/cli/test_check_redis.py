"""``guard-proxy check-redis`` against a real redis-server: what works, what does not, exit code."""

from __future__ import annotations

import re
import secrets as random
from collections.abc import Callable

from guard_proxy_testing.cli import RunCli
from guard_proxy_testing.redis_server import REDIS_SERVER_NAME, RedisServer, free_port


def fail_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAIL")]


def acl_user(
    factory: Callable[..., RedisServer], secrets: list[str], rules: str
) -> tuple[RedisServer, dict[str, str]]:
    """A server with an ACL user ``app`` (``rules`` after ``on >password``), and its env.

    Both the server's and ``app``'s password are registered as secrets.
    """
    app_password = random.token_hex(12)
    server = factory(extra_config=[f"user app on >{app_password} {rules}"])
    assert server.password
    secrets.extend([server.password, app_password])
    env = {
        "REDIS_HOST": server.host,
        "REDIS_PORT": str(server.port),
        "REDIS_USERNAME": "app",
        "REDIS_PASSWORD": app_password,
    }
    return server, env


def test_good_redis(run_cli: RunCli, secrets: list[str], redis_server: RedisServer) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    result = run_cli("check-redis", env=redis_server.env())
    assert result.returncode == 0, str(result)
    with redis_server.client() as client:  # the installed server's (Debian 12: 7.0, 13: 8.0)
        info = client.info("server")
    if REDIS_SERVER_NAME == "valkey-server":  # its own name and version, not the compat one
        server = f"server: Valkey {info['valkey_version']} (standalone)"
    else:
        server = f"server: Redis {info['redis_version']} (standalone)"
    for step in ("TCP connect", "AUTH", "PING", server, "SET EX", "GET", "EXISTS"):
        assert re.search(rf"^ok +{re.escape(step)}", result.stdout, re.M), f"{step}: {result}"
    for command in ("DEL", "UNLINK", "SCAN", "INFO"):
        assert re.search(rf"^ok +{command}\b", result.stdout, re.M), f"{command}: {result}"
    assert fail_lines(result.stdout) == []
    assert "Redis is usable by guard-proxy" in result.stdout
    assert redis_server.password not in result.output


def test_probe_key_is_removed(
    run_cli: RunCli, secrets: list[str], redis_server: RedisServer
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    with redis_server.client() as client:
        client.set("guard:keep", "1")
        client.set("other:keep", "1")
    result = run_cli("check-redis", env={**redis_server.env(), "CACHE_PREFIX": "guard:"})
    assert result.returncode == 0, str(result)
    probe = re.search(r"probe key (guard:check-redis:[0-9a-f]+)", result.stdout)
    assert probe, str(result)
    with redis_server.client() as client:
        assert client.exists(probe.group(1)) == 0
        assert sorted(client.keys("*")) == ["guard:keep", "other:keep"]


def test_password_file_and_db(
    run_cli: RunCli, secrets: list[str], redis_server: RedisServer
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    env = {
        "REDIS_HOST": redis_server.host,
        "REDIS_PORT": str(redis_server.port),
        "REDIS_PASSWORD_FILE": str(redis_server.write_password_file()),
        "REDIS_DB": "5",
        "CACHE_PREFIX": "ops:",
    }
    result = run_cli("check-redis", env=env)
    assert result.returncode == 0, str(result)
    assert "db 5" in result.stdout
    assert re.search(r"^ok +SELECT 5", result.stdout, re.M), str(result)
    assert "probe key ops:check-redis:" in result.stdout


def test_wrong_password(run_cli: RunCli, secrets: list[str], redis_server: RedisServer) -> None:
    wrong = "Wr0ng-" + random.token_hex(8)
    assert redis_server.password
    secrets.extend([redis_server.password, wrong])
    env = {**redis_server.env(), "REDIS_PASSWORD": wrong}
    result = run_cli("check-redis", env=env)
    assert result.returncode == 1, str(result)
    (line,) = fail_lines(result.stdout)
    assert line.startswith("FAIL  AUTH") and "WRONGPASS" in line, str(result)
    assert "Redis is NOT usable" in result.stdout
    assert wrong not in result.output


def test_no_password_configured(run_cli: RunCli, redis_server: RedisServer) -> None:
    env = {"REDIS_HOST": redis_server.host, "REDIS_PORT": str(redis_server.port)}
    result = run_cli("check-redis", env=env)
    assert result.returncode == 1, str(result)
    (line,) = fail_lines(result.stdout)
    assert "NOAUTH" in line, str(result)


def test_refused(run_cli: RunCli) -> None:
    port = free_port()
    result = run_cli("check-redis", env={"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port)})
    assert result.returncode == 1, str(result)
    (line,) = fail_lines(result.stdout)
    assert line.startswith(f"FAIL  TCP connect 127.0.0.1:{port}") and "refused" in line, str(result)


def test_frozen_redis(run_cli: RunCli, secrets: list[str], redis_server: RedisServer) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    redis_server.freeze()
    try:
        result = run_cli("check-redis", env=redis_server.env())
    finally:
        redis_server.thaw()
    assert result.returncode == 1, str(result)
    assert re.search(r"^ok +TCP connect", result.stdout, re.M), str(result)
    (line,) = fail_lines(result.stdout)
    assert "timed out" in line, str(result)


def test_acl_user_missing_a_command(
    run_cli: RunCli, secrets: list[str], redis_server_factory: Callable[..., RedisServer]
) -> None:
    server, env = acl_user(redis_server_factory, secrets, "~guard:* +@all -unlink")
    result = run_cli("check-redis", env=env)
    assert result.returncode == 1, str(result)
    assert re.search(r"^ok +AUTH as user 'app'", result.stdout, re.M), str(result)
    (line,) = fail_lines(result.stdout)
    assert line.startswith("FAIL  UNLINK") and "NOPERM" in line, str(result)
    assert re.search(r"^ok +DEL\b", result.stdout, re.M), str(result)
    with server.client() as client:
        assert client.keys("guard:check-redis:*") == []  # DEL cleaned up instead


def test_acl_user_without_set(
    run_cli: RunCli, secrets: list[str], redis_server_factory: Callable[..., RedisServer]
) -> None:
    _, env = acl_user(redis_server_factory, secrets, "~guard:* +@all -set")
    result = run_cli("check-redis", env=env)
    assert result.returncode == 1, str(result)
    (line,) = fail_lines(result.stdout)  # GET, EXISTS, ... are allowed: no cascade
    assert line.startswith("FAIL  SET EX: denied by ACL (NOPERM)") and "'set'" in line, str(result)
    for command in ("GET", "EXISTS", "DEL", "UNLINK"):
        assert re.search(rf"^ok +{command}$", result.stdout, re.M), f"{command}: {result}"


def test_acl_user_outside_its_key_pattern(
    run_cli: RunCli, secrets: list[str], redis_server_factory: Callable[..., RedisServer]
) -> None:
    _, env = acl_user(redis_server_factory, secrets, "~guard:* +@all")
    env["CACHE_PREFIX"] = "elsewhere:"
    result = run_cli("check-redis", env=env)
    assert result.returncode == 1, str(result)
    assert any(line.startswith("FAIL  SET EX") for line in fail_lines(result.stdout)), str(result)


def test_noeviction_policy_warns(
    run_cli: RunCli, secrets: list[str], redis_server: RedisServer
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    with redis_server.client() as client:
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    result = run_cli("check-redis", env=redis_server.env())
    assert result.returncode == 0, result  # a warning, not a failure
    assert re.search(r"^warn +maxmemory-policy is noeviction", result.stdout, re.M), str(result)
    assert "warning" in result.stdout.splitlines()[-1]


def test_eviction_policy_is_fine(
    run_cli: RunCli, secrets: list[str], redis_server_factory: Callable[..., RedisServer]
) -> None:
    server: RedisServer = redis_server_factory(
        extra_config=["maxmemory 64mb", "maxmemory-policy allkeys-lru"]
    )
    assert server.password
    secrets.append(server.password)
    result = run_cli("check-redis", env=server.env())
    assert result.returncode == 0, str(result)
    assert re.search(r"^ok +maxmemory-policy allkeys-lru", result.stdout, re.M), str(result)
    assert re.search(r"^ok +memory used .*, maxmemory 64", result.stdout, re.M), str(result)
    assert not re.search(r"^warn", result.stdout, re.M), str(result)
    assert result.stdout.splitlines()[-1] == "Redis is usable by guard-proxy."


def test_not_used_when_memory_or_disabled(run_cli: RunCli) -> None:
    port = str(free_port())  # nothing listens: a check would fail
    for extra, says in (
        ({"CACHE_BACKEND": "memory"}, "cache.backend=memory"),
        ({"REDIS_ENABLED": "false"}, "redis.enabled=false"),
        ({"CACHE_ENABLED": "false"}, "cache.enabled=false"),
    ):
        result = run_cli("check-redis", env={"REDIS_PORT": port, **extra})
        assert result.returncode == 0, str(result)
        assert "Redis is not used" in result.stdout and says in result.stdout, str(result)


def test_invalid_config(run_cli: RunCli) -> None:
    result = run_cli("check-redis", env={"REDIS_DB": "42"})
    assert result.returncode == 1, str(result)
    assert "REDIS_DB" in result.stderr or "redis.db" in result.stderr, str(result)
