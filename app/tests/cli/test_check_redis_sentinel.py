"""``guard-proxy check-redis`` through Sentinel: the primary is found, dead Sentinels are named."""

from __future__ import annotations

import secrets as secrets_module
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from guard_proxy_testing.cli import RunCli
from guard_proxy_testing.redis_server import REDIS_SERVER_BINARY, RedisServer, free_port

SENTINEL_PASSWORD = "sentinel-" + secrets_module.token_hex(12)


@pytest.fixture(params=[None])
def sentinel(
    request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer
) -> Iterator[str]:
    """A Sentinel (``redis-server --sentinel``) watching ``redis_server`` as ``mymaster``.

    Parametrize indirectly with a password to make the Sentinel itself require one.
    """
    password: str | None = request.param
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {tmp_path}\n"
        f"sentinel monitor mymaster {redis_server.host} {redis_server.port} 1\n"
        f"sentinel auth-pass mymaster {redis_server.password}\n"
        + (f"requirepass {password}\n" if password else "")
    )
    conf.chmod(0o600)
    log = open(tmp_path / "sentinel.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [REDIS_SERVER_BINARY, str(conf), "--sentinel"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, password=password, socket_timeout=0.5) as client:
                    client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("sentinel did not start")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()


def _env(redis_server: RedisServer, sentinels: str, service: str = "mymaster") -> dict[str, str]:
    assert redis_server.password
    return {
        "REDIS_SENTINELS": sentinels,
        "REDIS_SENTINEL_SERVICE": service,
        "REDIS_PASSWORD": redis_server.password,
        "REDIS_HOST": "192.0.2.1",  # ignored: Sentinel names the primary
    }


def test_primary_found_through_sentinel(
    run_cli: RunCli, secrets: list[str], redis_server: RedisServer, sentinel: str
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    dead = f"127.0.0.1:{free_port()}"
    result = run_cli("check-redis", env=_env(redis_server, f"{dead},{sentinel}"))
    assert result.returncode == 0, str(result)
    assert (
        f"ok    sentinel {sentinel}: primary of 'mymaster' is {redis_server.address}"
        in result.stdout
    ), str(result)
    assert f"warn  sentinel {dead}: Error 111" in result.stdout, str(result)
    assert f"ok    TCP connect {redis_server.address}" in result.stdout, str(result)
    assert "ok    UNLINK" in result.stdout


def test_unknown_service(
    run_cli: RunCli, secrets: list[str], redis_server: RedisServer, sentinel: str
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    result = run_cli("check-redis", env=_env(redis_server, sentinel, service="other"))
    assert result.returncode == 1, str(result)
    assert f"FAIL  sentinel {sentinel}: does not know the service 'other'" in result.stdout


def test_no_sentinel_answers(
    run_cli: RunCli, secrets: list[str], redis_server: RedisServer
) -> None:
    assert redis_server.password
    secrets.append(redis_server.password)
    dead = f"127.0.0.1:{free_port()}"
    result = run_cli("check-redis", env=_env(redis_server, dead))
    assert result.returncode == 1, str(result)
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert fails == [
        f"FAIL  sentinel {dead}: Error 111 connecting to {dead}. Connect call failed "
        f"('127.0.0.1', {dead.rsplit(':', 1)[1]})."
    ], str(result)
    assert "TCP connect" not in result.stdout


@pytest.mark.parametrize("sentinel", [SENTINEL_PASSWORD], indirect=True, ids=["password"])
def test_sentinel_and_data_node_passwords_from_files(
    run_cli: RunCli, secrets: list[str], redis_server: RedisServer, sentinel: str, tmp_path: Path
) -> None:
    """The service's credential files: REDIS_SENTINEL_PASSWORD_FILE and REDIS_PASSWORD_FILE."""
    assert redis_server.password
    secrets += [redis_server.password, SENTINEL_PASSWORD]
    sentinel_file = tmp_path / "sentinel_password"
    sentinel_file.write_text(SENTINEL_PASSWORD + "\n")
    sentinel_file.chmod(0o600)
    env = {
        "REDIS_SENTINELS": sentinel,
        "REDIS_SENTINEL_SERVICE": "mymaster",
        "REDIS_SENTINEL_PASSWORD_FILE": str(sentinel_file),
        "REDIS_PASSWORD_FILE": str(redis_server.write_password_file()),
        "REDIS_HOST": "192.0.2.1",  # ignored: Sentinel names the primary
    }
    result = run_cli("check-redis", env=env)
    assert result.returncode == 0, str(result)
    assert (
        f"ok    sentinel {sentinel}: primary of 'mymaster' is {redis_server.address}"
        in result.stdout
    ), str(result)
    assert "ok    AUTH as the default user" in result.stdout, str(result)
    assert result.stdout.splitlines()[-1].startswith("Redis is usable by guard-proxy"), str(result)

    # Without the Sentinel password the Sentinel refuses, and check-redis says so.
    without = {k: v for k, v in env.items() if k != "REDIS_SENTINEL_PASSWORD_FILE"}
    refused = run_cli("check-redis", env=without)
    assert refused.returncode == 1, str(refused)
    assert f"FAIL  sentinel {sentinel}: " in refused.stdout, str(refused)
