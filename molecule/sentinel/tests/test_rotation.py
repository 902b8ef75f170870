"""Run last: the replication and Sentinel passwords are rotated by two re-runs of the Redis
play and the proxies' rolling update (playbooks/redis.yml, playbooks/rolling_update.yml: the
plays of site.yml that these passwords reach; this scenario has no firewall, load balancer
or monitoring host) under traffic (docs/runbook.md, "Rotate the replication and Sentinel
passwords"): first
the next passwords are accepted everywhere (and the proxy's Sentinel user gets its new
password, the old one still accepted), then they are used and the old ones refused. No
request fails, replication stays up, the Sentinels agree, the proxy stays on Redis."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
from typing import Any

import yaml
from gplib import TRAFFIC_SCRIPT, name_of, proxy_url, run_playbook, wait_for
from sentinel_lib import (
    SERVICE,
    address,
    cache_health,
    replication,
    sentinel,
    sentinel_admin_password,
    sentinel_primary,
)

_STOP = "/run/gp-test-rotate-traffic-stop"


def _site(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The Redis play, then the proxies one at a time, in one ansible-playbook run with
    ``extra`` as extra vars from a 0600 file (never on a command line)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rotate.yml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(extra, f)
        return run_playbook("playbooks/redis.yml", "playbooks/rolling_update.yml", "-e", f"@{path}")


def _refused(host: Any, password: str, user: str = "") -> bool:
    out = sentinel(host, password, "PING", user=user)
    return "WRONGPASS" in out.stdout + out.stderr


def test_rotated_replication_and_sentinel_passwords_apply_with_no_failed_request(
    redis_hosts: list[Any], proxy_host: Any, proxy_creds: tuple[str, str], sentinel_client: tuple[str, str]
) -> None:
    old_admin = sentinel_admin_password(redis_hosts[0])
    client_user, old_client = sentinel_client
    new = {name: secrets.token_hex(24) for name in ("replication", "acl", "admin", "client")}

    proxy_host.run("rm -f %s", _STOP)
    traffic = subprocess.Popen(
        ["podman", "exec", name_of(proxy_host), "python3", "-c", TRAFFIC_SCRIPT,
         proxy_url(proxy_host) + "/api/generate", _STOP, "900", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # 1: the next passwords are accepted everywhere but not used yet; the proxy's
        # Sentinel user changes (old one still accepted until the proxy has switched).
        first = _site({
            "redis_replication_password_next": new["replication"],
            "redis_sentinel_acl_password_next": new["acl"],
            "redis_sentinel_password_next": new["admin"],
            "redis_sentinel_client_password": new["client"],
            "redis_sentinel_client_previous_password": old_client,
            "guard_proxy_redis_sentinel_password": new["client"],
        })
        assert first.returncode == 0, first.stdout[-3000:]
        for host in redis_hosts:
            for password in (old_admin, new["admin"]):
                assert sentinel(host, password, "PING").stdout.strip() == "PONG"
        # 2: the new passwords are used everywhere; the old ones are refused.
        second = _site({
            "redis_replication_password": new["replication"],
            "redis_sentinel_acl_password": new["acl"],
            "redis_sentinel_password": new["admin"],
            "redis_sentinel_client_password": new["client"],
            "guard_proxy_redis_sentinel_password": new["client"],
        })
        assert second.returncode == 0, second.stdout[-3000:]
    finally:
        proxy_host.run("touch %s", _STOP)
        out, err = traffic.communicate(timeout=60)
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-500:]}
    assert result.get("failed") == 0, result
    assert result.get("ok", 0) > 0, result

    assert proxy_host.file("/etc/guard-proxy/credentials/sentinel_password").content_string == new["client"]
    for host in redis_hosts:
        assert sentinel_admin_password(host) == new["admin"]
        assert _refused(host, old_admin), name_of(host)
        assert _refused(host, old_client, user=client_user), name_of(host)
        assert sentinel(host, new["client"], "PING", user=client_user).stdout.strip() == "PONG"
    roles = {name_of(h): replication(h, proxy_creds) for h in redis_hosts}
    primary = next(h for h in redis_hosts if roles[name_of(h)]["role"] == "master")
    for host in redis_hosts:
        assert sentinel_primary(host, new["admin"]) == address(primary)
        if host is not primary:
            # The replica's link authenticated with the new replication password.
            assert wait_for(lambda h=host: replication(h, proxy_creds).get("master_link_status") == "up",
                            timeout=30), replication(host, proxy_creds)
        # The Sentinel reaches Redis with its new ACL password and sees its peers.
        master = sentinel(host, new["admin"], f"SENTINEL MASTER {SERVICE}").stdout.split()
        fields = dict(zip(master[::2], master[1::2], strict=False))
        assert "s_down" not in fields.get("flags", ""), fields
        assert fields.get("num-other-sentinels") == "2", fields
    # Sentinels of other hosts have not marked any replica down with the old password.
    assert wait_for(
        lambda: all(
            "s_down" not in sentinel(h, new["admin"], f"SENTINEL REPLICAS {SERVICE}").stdout
            for h in redis_hosts
        ),
        timeout=30,
    )
    assert cache_health(proxy_host)["active_backend"] == "redis"
