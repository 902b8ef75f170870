"""Fixtures for scenario default: redis1 (group redis) and proxy1 (group guard_proxy)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from gplib import proxy_redis_credentials, run_in_order  # noqa: E402


# Verify runs the modules in this order: read-only checks first, the model scanner (its
# wrong-sha256 re-run stops before touching the host), then the failover (stops Redis,
# kills the proxy), what an operator sees of it, and the deploy gates (re-runs).
ORDER = (
    "test_proxy.py",
    "test_redis.py",
    "test_models.py",
    "test_failover.py",
    "test_operator_view.py",
    "test_deploy_gates.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    run_in_order(items, ORDER)


@pytest.fixture(scope="session")
def redis_host() -> Any:
    return testinfra.get_host("podman://redis1")


@pytest.fixture(scope="session")
def proxy_host() -> Any:
    return testinfra.get_host("podman://proxy1")


@pytest.fixture(scope="session")
def proxy_creds(proxy_host: Any) -> tuple[str, str]:
    """(username, password) of the proxy's Redis ACL user, read from proxy1's files."""
    return proxy_redis_credentials(proxy_host)
