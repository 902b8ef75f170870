"""Fixtures for scenario shared-cache: redis1, two proxies (proxy1, proxy2) and two load
balancers that are also the monitoring hosts (lb1 on Debian 12, lb2 on Debian 13; the others
on Debian 12)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import testinfra

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from gplib import name_of, podman_exec_stdin, run_in_order  # noqa: E402

# Verify runs the modules in this order: the firewall and the shared cache first, then the
# rolling updates (restart proxies), and monitoring last (it stops Redis).
ORDER = (
    "test_firewall.py",
    "test_frontdoor.py",
    "test_shared_cache.py",
    "test_rolling.py",
    "test_monitoring.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    run_in_order(items, ORDER)


@pytest.fixture(scope="session")
def redis_host() -> Any:
    return testinfra.get_host("podman://redis1")


@pytest.fixture(scope="session")
def proxy1() -> Any:
    return testinfra.get_host("podman://proxy1")


@pytest.fixture(scope="session")
def proxy2() -> Any:
    return testinfra.get_host("podman://proxy2")


@pytest.fixture(scope="session")
def lb1() -> Any:
    return testinfra.get_host("podman://lb1")


@pytest.fixture(scope="session")
def lb2() -> Any:
    return testinfra.get_host("podman://lb2")


@pytest.fixture(scope="session", autouse=True)
def trusted_ca(redis_host: Any, proxy1: Any, proxy2: Any, lb1: Any, lb2: Any) -> str:
    """redis1, where the tests' clients run, trusts the throw-away CA that issued the front
    doors' certificates (haproxy_tls_generate) and the proxies' (guard_proxy_tls_generate):
    in the system store, as a client's admin would install it. So do the proxies (the tests
    call them on https://127.0.0.1:8080 from inside) and the load balancers (lb1 is the one
    client host the firewall lets reach a proxy directly; lb2 is a monitoring host too).
    HAProxy does not use this store: it verifies the proxies against its own ca-file."""
    ca = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".work" / "tls-ca" / "ca.crt"
    path = "/usr/local/share/ca-certificates/gp-test-ca.crt"
    for host in (redis_host, proxy1, proxy2, lb1, lb2):
        podman_exec_stdin(name_of(host), f"cat > {path} && update-ca-certificates", ca.read_text())
    return path
