"""The test Redis itself: auth required, faults do what they say, restart keeps the port."""

from __future__ import annotations

import subprocess

import pytest
import redis
from guard_proxy_testing.redis_server import REDIS_SERVER_BINARY, REDIS_SERVER_NAME, RedisServer


def test_requires_password(redis_server: RedisServer) -> None:
    with (
        redis_server.client(password=None) as anon,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anon.ping()
    with redis_server.client() as client:
        assert client.ping()


def test_password_not_in_process_list(redis_server: RedisServer) -> None:
    assert redis_server.password
    ps = subprocess.run(
        ["ps", "-o", "args=", "-p", str(redis_server.pid)], capture_output=True, text=True
    )
    assert REDIS_SERVER_NAME in ps.stdout
    assert redis_server.password not in ps.stdout


def test_the_server_is_the_chosen_binary(redis_server: RedisServer) -> None:
    """GUARD_TEST_REDIS_SERVER decides what the Redis tests run against: Valkey says so in
    INFO (valkey_version; it reports redis_version 7.2.4 too, for old clients), Redis not."""
    with redis_server.client() as client:
        info = client.info("server")
    assert info["executable"] == REDIS_SERVER_BINARY
    assert ("valkey_version" in info) == REDIS_SERVER_NAME.startswith("valkey"), info


def test_kill_and_restart_same_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    with redis_server.client() as client:
        client.set("k", "v")
    redis_server.kill()
    assert not redis_server.running
    redis_server.restart()
    assert redis_server.port == port
    with redis_server.client() as client:
        assert client.get("k") is None  # no persistence


def test_shutdown(redis_server: RedisServer) -> None:
    redis_server.shutdown()
    assert not redis_server.running


def test_freeze_and_thaw(redis_server: RedisServer) -> None:
    redis_server.freeze()
    with (
        redis_server.client(socket_timeout=0.05) as client,
        pytest.raises(redis.exceptions.TimeoutError),
    ):
        client.ping()
    redis_server.thaw()
    with redis_server.client() as client:
        assert client.ping()


def test_restart_after_freeze(redis_server: RedisServer) -> None:
    redis_server.freeze()
    redis_server.restart()
    with redis_server.client() as client:
        assert client.ping()
