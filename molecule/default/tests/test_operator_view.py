"""What an operator sees with systemctl and journalctl (runs after the failover tests).

- ``systemctl show -p StatusText`` says ``ready`` and ``redis`` on a healthy stack,
  ``DEGRADED`` and ``memory`` within seconds of a Redis stop, ``ready`` again after it;
- ``journalctl -p warning -u guard-proxy`` holds the failover line and no info line;
- a proxy frozen with ``kill -STOP`` is restarted by the watchdog and serves again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from gplib import PROXY_UNIT, REDIS_UNIT, http, main_pid, proxy_url, wait_for


def _status_text(host: Any) -> str:
    return str(host.run("systemctl show -P StatusText %s", PROXY_UNIT).stdout.strip())


def _journal(host: Any, since: str, priority: str) -> list[dict[str, Any]]:
    out = host.run(
        "journalctl -u %s --since @%s -p %s -o json --no-pager", PROXY_UNIT, since, priority
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _now(host: Any) -> str:
    return str(host.run("date +%s").stdout.strip())


@pytest.fixture
def restore(redis_host: Any, proxy_host: Any) -> Iterator[None]:
    yield
    redis_host.run("systemctl start %s", REDIS_UNIT)
    pid = proxy_host.run("systemctl show -P MainPID %s", PROXY_UNIT).stdout.strip()
    if pid and pid != "0":
        proxy_host.run("kill -CONT %s", pid)
    proxy_host.run("systemctl start %s", PROXY_UNIT)
    wait_for(lambda: "ready" in _status_text(proxy_host) and "redis" in _status_text(proxy_host),
             timeout=60)


def test_status_line_follows_the_cache_backend(
    redis_host: Any, proxy_host: Any, restore: None
) -> None:
    assert wait_for(lambda: "redis" in _status_text(proxy_host), timeout=30), _status_text(proxy_host)
    healthy = _status_text(proxy_host)
    assert healthy.startswith("ready"), healthy
    assert "DEGRADED" not in healthy

    since = _now(proxy_host)
    redis_host.run("systemctl stop %s", REDIS_UNIT)
    # A request makes the breaker see the loss at once; the prober would within seconds too.
    http(proxy_host, "POST", proxy_url(proxy_host) + "/api/generate",
         {"model": "llama3.2", "prompt": "ECHO:status line", "stream": False})
    degraded = wait_for(
        lambda: (t := _status_text(proxy_host)).startswith("DEGRADED") and "memory" in t and t,
        timeout=20,
    )
    assert degraded, _status_text(proxy_host)

    # journalctl -p warning: the failover line, and nothing below warning.
    warnings = wait_for(lambda: _journal(proxy_host, since, "warning"), timeout=10)
    assert warnings, "no warning in the journal after a Redis stop"
    assert all(int(entry["PRIORITY"]) <= 4 for entry in warnings), warnings
    assert any("memory" in entry["MESSAGE"] or "failover" in entry["MESSAGE"] for entry in warnings), [
        entry["MESSAGE"] for entry in warnings
    ]
    # ... while info lines of the same window (requests) sit at priority 6.
    everything = _journal(proxy_host, since, "debug")
    assert any(int(entry["PRIORITY"]) == 6 for entry in everything), everything[-5:]

    redis_host.run("systemctl start %s", REDIS_UNIT)
    recovered = wait_for(
        lambda: (t := _status_text(proxy_host)).startswith("ready") and "redis" in t and t,
        timeout=30,
    )
    assert recovered, _status_text(proxy_host)


def test_watchdog_restarts_a_frozen_proxy(proxy_host: Any, restore: None) -> None:
    shown = proxy_host.run("systemctl show -p WatchdogUSec %s", PROXY_UNIT).stdout.strip()
    assert shown not in ("WatchdogUSec=0", "WatchdogUSec=infinity", ""), shown
    pid = main_pid(proxy_host, PROXY_UNIT)
    restarts = int(proxy_host.run("systemctl show -P NRestarts %s", PROXY_UNIT).stdout.strip() or 0)
    proxy_host.run("kill -STOP %s", str(pid))
    new_pid = wait_for(
        lambda: (p := main_pid(proxy_host, PROXY_UNIT)) not in (0, pid) and p, timeout=180
    )
    assert new_pid, "the watchdog did not restart the frozen proxy"
    after = int(proxy_host.run("systemctl show -P NRestarts %s", PROXY_UNIT).stdout.strip() or 0)
    assert after == restarts + 1
    assert wait_for(
        lambda: http(proxy_host, "GET", proxy_url(proxy_host) + "/health")["status"] == 200,
        timeout=120,
    )
    journal = proxy_host.run("journalctl -u %s -n 200 --no-pager", PROXY_UNIT).stdout
    assert "watchdog" in journal.lower(), journal[-2000:]
