"""Fixtures for scenario sentinel: sentinel-redis1..3 (group redis) and sentinel-proxy1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from gplib import proxy_redis_credentials, run_in_order  # noqa: E402
from sentinel_lib import proxy_sentinel_user, sentinel_admin_password  # noqa: E402

REDIS_HOSTS = ("sentinel-redis1", "sentinel-redis2", "sentinel-redis3")


# Verify runs the modules in this order: read-only checks first, then the failover (stops
# the primary), the re-run after it, and the password rotation (two re-runs).
ORDER = (
    "test_sentinel.py",
    "test_tls.py",
    "test_failover.py",
    "test_rerun.py",
    "test_rotation.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    run_in_order(items, ORDER)


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


@pytest.fixture
def sentinel_password(redis_hosts: list[Any]) -> str:
    """The Sentinels' admin password, as the role wrote it (sentinel-pass in its include).
    Read per test: the rotation test changes it."""
    return sentinel_admin_password(redis_hosts[0])


@pytest.fixture
def sentinel_client(proxy_host: Any) -> tuple[str, str]:
    """(user, password) the proxy asks the Sentinels with: its config and its credential."""
    path = "/etc/guard-proxy/credentials/sentinel_password"
    assert proxy_host.file(path).mode == 0o600
    password = str(proxy_host.file(path).content_string)
    assert password, f"{path} is empty"
    return proxy_sentinel_user(proxy_host), password
