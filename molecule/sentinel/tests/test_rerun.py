"""Run last, after the failover: re-running the Redis play keeps the promoted primary.
The role asks the Sentinels before it writes anything, so it neither demotes the new
primary nor re-promotes the inventory's first host, and it restarts nothing."""

from __future__ import annotations

from typing import Any

from gplib import FLAVOUR, REDIS_UNIT, main_pid, name_of, run_playbook, wait_for
from sentinel_lib import address, cache_health, replication, sentinel_events, sentinel_primary

INVENTORY_PRIMARY = "sentinel-redis1"  # redis_replication_primary: first host of the group


def test_rerun_after_failover_keeps_the_promoted_primary(
    redis_hosts: list[Any], proxy_host: Any, proxy_creds: tuple[str, str], sentinel_password: str
) -> None:
    def roles() -> dict[str, str]:
        return {name_of(h): replication(h, proxy_creds).get("role", "") for h in redis_hosts}

    assert wait_for(lambda: sorted(roles().values()) == ["master", "slave", "slave"], timeout=60)
    before = roles()
    primary = next(h for h in redis_hosts if before[name_of(h)] == "master")
    assert name_of(primary) != INVENTORY_PRIMARY, "no failover happened before this test\n" + (
        sentinel_events(redis_hosts)
    )
    pids = {name_of(h): main_pid(h, REDIS_UNIT) for h in redis_hosts}

    run = run_playbook("playbooks/redis.yml")
    assert run.returncode == 0, run.stdout[-3000:]

    assert roles() == before
    assert {name_of(h): main_pid(h, REDIS_UNIT) for h in redis_hosts} == pids, "Redis was restarted"
    for host in redis_hosts:
        assert sentinel_primary(host, sentinel_password) == address(primary)
        runtime = host.file(FLAVOUR.runtime_conf).content_string
        replicaof = [line for line in runtime.splitlines() if line.startswith("replicaof ")]
        if host is primary:
            assert replicaof == []
        else:
            assert replicaof == [f"replicaof {address(primary)} 6379"]
    assert cache_health(proxy_host)["active_backend"] == "redis"
