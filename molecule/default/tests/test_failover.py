"""Failover, run last (it stops services): Redis down -> memory with no failed request,
Redis back -> redis without a proxy restart; kill -9 -> systemd restarts the proxy.
A finalizer always starts again whatever a test stopped."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gplib import (
    PROXY_UNIT,
    REDIS_UNIT,
    TRAFFIC_SCRIPT,
    http,
    main_pid,
    name_of,
    proxy_url,
    wait_for,
)

_STOP = "/run/gp-test-traffic-stop"


def _active_backend(proxy_host: Any) -> str | None:
    """/cache/health's active_backend (it answers 503 while a wanted Redis is down)."""
    r = http(proxy_host, "GET", proxy_url(proxy_host) + "/cache/health")
    return r["json"].get("active_backend") if isinstance(r["json"], dict) else None


def _restarts(host: Any, unit: str) -> int:
    return int(host.run("systemctl show -P NRestarts %s", unit).stdout.strip() or 0)


@pytest.fixture
def restore(redis_host: Any, proxy_host: Any) -> Iterator[None]:
    """Whatever happens, leave Redis and the proxy running."""
    yield
    redis_host.run("systemctl start %s", REDIS_UNIT)
    proxy_host.run("systemctl start %s", PROXY_UNIT)
    proxy_host.run("touch %s", _STOP)
    wait_for(lambda: _active_backend(proxy_host) == "redis", timeout=60)


def test_redis_stop_and_start_with_traffic(redis_host: Any, proxy_host: Any, restore: None) -> None:
    url = proxy_url(proxy_host) + "/api/generate"
    assert _active_backend(proxy_host) == "redis"
    pid_before = main_pid(proxy_host, PROXY_UNIT)
    restarts_before = _restarts(proxy_host, PROXY_UNIT)
    proxy_host.run("rm -f %s", _STOP)
    traffic = subprocess.Popen(
        ["podman", "exec", name_of(proxy_host), "python3", "-c", TRAFFIC_SCRIPT, url, _STOP, "120", "5000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        assert redis_host.run("systemctl stop %s", REDIS_UNIT).rc == 0
        assert wait_for(lambda: _active_backend(proxy_host) == "memory", timeout=30)
        time.sleep(2)  # keep traffic flowing while Redis is down
        assert redis_host.run("systemctl start %s", REDIS_UNIT).rc == 0
        assert wait_for(lambda: _active_backend(proxy_host) == "redis", timeout=60)
        time.sleep(1)
    finally:
        proxy_host.run("touch %s", _STOP)
        out, err = traffic.communicate(timeout=60)
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-500:]}
    assert result.get("failed") == 0, result
    assert result.get("ok", 0) > 0, result
    assert main_pid(proxy_host, PROXY_UNIT) == pid_before, "proxy was restarted"
    assert _restarts(proxy_host, PROXY_UNIT) == restarts_before


def test_kill_9_proxy_is_restarted_by_systemd(proxy_host: Any, restore: None) -> None:
    pid = main_pid(proxy_host, PROXY_UNIT)
    restarts = _restarts(proxy_host, PROXY_UNIT)
    assert pid > 0
    assert proxy_host.run("kill -9 %s", str(pid)).rc == 0

    def back() -> bool:
        new = main_pid(proxy_host, PROXY_UNIT)
        if new in (0, pid) or not proxy_host.service(PROXY_UNIT).is_running:
            return False
        r = http(proxy_host, "GET", proxy_url(proxy_host) + "/health")
        return r["status"] == 200

    # systemd waits out TimeoutStopSec (drain + 15 s) on these cgroup v1 hosts before the
    # restart, then the start-up: generous, for the scenarios running side by side.
    assert wait_for(back, timeout=180, interval=1)
    assert _restarts(proxy_host, PROXY_UNIT) > restarts
