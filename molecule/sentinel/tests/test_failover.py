"""Failover, run last (it stops the primary): under traffic through the proxy, a replica
is promoted, the proxy follows it with no failed request and no restart, and a verdict
written before the failover is still there. A finalizer starts the old primary again."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from gplib import (
    FLAVOUR,
    PROXY_UNIT,
    REDIS_UNIT,
    TRAFFIC_SCRIPT,
    main_pid,
    name_of,
    proxy_url,
    redis_cli,
    wait_for,
)
from sentinel_lib import (
    address,
    cache_health,
    cache_stats,
    generate,
    replication,
    sentinel_primary,
)

_STOP = "/run/gp-test-sentinel-traffic-stop"


def _keys(host: Any, creds: tuple[str, str]) -> set[str]:
    cmd = redis_cli(host, "--scan --pattern 'guard:*'", user=creds[0], password=creds[1])
    assert cmd.rc == 0, cmd.stderr
    return {line for line in cmd.stdout.split() if line}


def _exists(host: Any, creds: tuple[str, str], keys: set[str]) -> bool:
    cmd = redis_cli(host, "EXISTS " + " ".join(sorted(keys)), user=creds[0], password=creds[1])
    return cmd.rc == 0 and cmd.stdout.strip() == str(len(keys))


@pytest.fixture
def restore(redis_hosts: list[Any], proxy_host: Any) -> Iterator[None]:
    """Whatever happens, leave every Redis, Sentinel and the proxy running."""
    yield
    proxy_host.run("touch %s", _STOP)
    for host in redis_hosts:
        host.run("systemctl start %s %s", REDIS_UNIT, FLAVOUR.sentinel_unit)
    proxy_host.run("systemctl start %s", PROXY_UNIT)
    wait_for(lambda: cache_health(proxy_host).get("active_backend") == "redis", timeout=60)


def test_primary_stop_promotes_a_replica_and_the_proxy_follows(
    redis_hosts: list[Any],
    proxy_host: Any,
    proxy_creds: tuple[str, str],
    sentinel_password: str,
    restore: None,
) -> None:
    roles = {name_of(h): replication(h, proxy_creds)["role"] for h in redis_hosts}
    primary = next(h for h in redis_hosts if roles[name_of(h)] == "master")
    replicas = [h for h in redis_hosts if h is not primary]
    assert cache_health(proxy_host)["redis_address"].startswith(address(primary) + ":")

    # A verdict written before the failover, replicated to both replicas.
    text = f"written before the failover {uuid.uuid4().hex}"
    keys_before = _keys(primary, proxy_creds)
    generate(proxy_host, text)
    written = _keys(primary, proxy_creds) - keys_before
    assert written, "the request left no verdict in Redis"
    assert wait_for(lambda: all(_exists(r, proxy_creds, written) for r in replicas), timeout=30)

    pid_before = main_pid(proxy_host, PROXY_UNIT)
    proxy_host.run("rm -f %s", _STOP)
    traffic = subprocess.Popen(
        ["podman", "exec", name_of(proxy_host), "python3", "-c", TRAFFIC_SCRIPT,
         proxy_url(proxy_host) + "/api/generate", _STOP, "180", "10000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        assert primary.run("systemctl stop %s", REDIS_UNIT).rc == 0
        promoted = wait_for(
            lambda: next(
                (r for r in replicas if sentinel_primary(r, sentinel_password) == address(r)), None
            ),
            timeout=90,
            interval=1,
        )
        assert promoted is not None, "no replica was promoted"
        assert wait_for(
            lambda: cache_health(proxy_host).get("redis_address", "").startswith(address(promoted) + ":")
            and cache_health(proxy_host).get("active_backend") == "redis",
            timeout=60,
            interval=1,
        ), cache_health(proxy_host)
        time.sleep(2)  # traffic against the new primary
    finally:
        proxy_host.run("touch %s", _STOP)
        out, err = traffic.communicate(timeout=60)
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-500:]}
    assert result.get("failed") == 0, result
    assert result.get("ok", 0) > 0, result
    assert main_pid(proxy_host, PROXY_UNIT) == pid_before, "the proxy was restarted"

    assert replication(promoted, proxy_creds)["role"] == "master"
    assert _exists(promoted, proxy_creds, written), "the verdict did not survive the failover"
    before = cache_stats(proxy_host)
    generate(proxy_host, text)
    # Several workers: /cache/stats adds up snapshots at most about a second old.
    after = wait_for(lambda: (s := cache_stats(proxy_host))["hits"] > before["hits"] and s, timeout=10)
    assert after, (before, cache_stats(proxy_host))
    assert after["misses"] == before["misses"], (before, after)


def test_old_primary_rejoins_as_a_replica(
    redis_hosts: list[Any], proxy_creds: tuple[str, str], sentinel_password: str
) -> None:
    """Runs after the failover: started again, the old primary is demoted by the Sentinels."""
    for host in redis_hosts:
        assert host.run("systemctl start %s", REDIS_UNIT).rc == 0

    def settled() -> bool:
        roles = sorted(replication(h, proxy_creds, strict=False).get("role", "") for h in redis_hosts)
        return roles == ["master", "slave", "slave"]

    assert wait_for(settled, timeout=90, interval=1)
