"""Fixtures for scenario sentinel: sentinel-redis1..3 (group redis) and sentinel-proxy1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from gplib import proxy_redis_credentials  # noqa: E402

REDIS_HOSTS = ("sentinel-redis1", "sentinel-redis2", "sentinel-redis3")


@pytest.fixture(scope="session")
def redis_hosts() -> list[Any]:
    return [testinfra.get_host(f"podman://{name}") for name in REDIS_HOSTS]


@pytest.fixture(scope="session")
def proxy_host() -> Any:
    return testinfra.get_host("podman://sentinel-proxy1")


@pytest.fixture(scope="session")
def proxy_creds(proxy_host: Any) -> tuple[str, str]:
    """(username, password) of the proxy's Redis ACL user, read from the proxy's files."""
    return proxy_redis_credentials(proxy_host)


@pytest.fixture(scope="session")
def sentinel_password(proxy_host: Any) -> str:
    """The Sentinels' password, from the source of the proxy's ``sentinel_password`` credential."""
    path = "/etc/guard-proxy/credentials/sentinel_password"
    assert proxy_host.file(path).mode == 0o600
    password = str(proxy_host.file(path).content_string)
    assert password, f"{path} is empty"
    return password
