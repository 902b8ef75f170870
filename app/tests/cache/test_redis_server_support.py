"""The test Redis itself: auth required, faults do what they say, restart keeps the port."""

from __future__ import annotations

import subprocess

import pytest
import redis
from guard_proxy_testing.redis_server import RedisServer


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
    assert "redis-server" in ps.stdout
    assert redis_server.password not in ps.stdout


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
