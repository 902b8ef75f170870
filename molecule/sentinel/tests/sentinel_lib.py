"""Helpers of scenario sentinel: replication roles, Sentinel queries, host addresses."""

from __future__ import annotations

import json
import re
from typing import Any

from gplib import (
    FLAVOUR,
    SECRET_DIR,
    http,
    name_of,
    podman_exec_stdin,
    proxy_url,
    redis_cli,
    redis_tls_args,
)

SENTINEL_PORT = 26379
# The Sentinel's settings the role owns (tls-port and the TLS files when TLS is on).
SENTINEL_CONF = f"{FLAVOUR.conf_dir}/sentinel-static.conf"
SERVICE = "mymaster"


def address(host: Any) -> str:
    """The host's address on the scenario network."""
    out = host.run("ip -4 -o addr show scope global").stdout.split()
    return out[out.index("inet") + 1].split("/")[0]


def replication(host: Any, creds: tuple[str, str], strict: bool = True) -> dict[str, str]:
    """INFO replication of the host's Redis, as the proxy's ACL user (it has +info).
    ``strict=False``: {} when the CLI gets no answer, for polls that may meet the Sentinels'
    reconfiguration of a demoted primary (REPLICAOF ends with CLIENT KILL TYPE normal, which
    closes the connection asking at that moment)."""
    cmd = redis_cli(host, "INFO replication", user=creds[0], password=creds[1])
    if not strict and cmd.rc != 0:
        return {}
    assert cmd.rc == 0, cmd.stderr
    fields = {}
    for line in cmd.stdout.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key] = value
    return fields


def sentinel(host: Any, password: str, args: str, user: str = "") -> Any:
    """The flavour's CLI against the host's Sentinel (as ``user``, else the admin ``default``;
    over TLS when its file says so); the password travels through a 0600 file."""
    podman_exec_stdin(
        name_of(host),
        f"umask 077; mkdir -p {SECRET_DIR}; cat > {SECRET_DIR}/sentinel-pass",
        password,
    )
    auth = f"--user {user} " if user else ""
    return host.run(
        f'REDISCLI_AUTH="$(cat {SECRET_DIR}/sentinel-pass)" '
        f"{FLAVOUR.cli} --no-auth-warning --raw -h 127.0.0.1 -p {SENTINEL_PORT} "
        f"{redis_tls_args(host, SENTINEL_CONF)}{auth}{args}"
    )


def sentinel_admin_password(host: Any) -> str:
    """The Sentinels' admin password as the role wrote it into the host's static include."""
    conf = host.file(SENTINEL_CONF).content_string
    m = re.search(r'^sentinel sentinel-pass "?([^"\n]+)"?$', conf, re.M)
    assert m, f"no sentinel-pass in {SENTINEL_CONF}"
    return m.group(1)


def proxy_sentinel_user(proxy: Any) -> str:
    """The Sentinel user named in the proxy's configuration."""
    conf = proxy.file("/etc/guard-proxy/config.yaml").content_string
    m = re.search(r"^\s*sentinel_username:\s*\"?([^\"\n]*)\"?\s*$", conf, re.M)
    assert m and m.group(1), "no redis.sentinel_username in the proxy's config"
    return m.group(1)


def sentinel_primary(host: Any, password: str) -> str:
    """The primary's address as the host's Sentinel sees it ("" when it cannot say)."""
    cmd = sentinel(host, password, f"SENTINEL GET-MASTER-ADDR-BY-NAME {SERVICE}")
    lines = cmd.stdout.split()
    return lines[0] if cmd.rc == 0 and len(lines) == 2 else ""


def sentinel_events(hosts: list[Any]) -> str:
    """Each Sentinel's failover events from its journal, for failure messages."""
    pattern = r"[+-](switch-master|odown|sdown|failover|try-failover|elected-leader|convert-to-slave|reboot)"
    return "\n".join(
        f"{name_of(h)}: {line}"
        for h in hosts
        for line in h.run(
            "journalctl -u %s -o short-precise --no-pager", FLAVOUR.sentinel_unit
        ).stdout.splitlines()
        if re.search(pattern, line)
    )


def cache_health(proxy: Any) -> dict[str, Any]:
    r = http(proxy, "GET", proxy_url(proxy) + "/cache/health")
    return r["json"] if isinstance(r["json"], dict) else {}


def cache_stats(proxy: Any) -> dict[str, Any]:
    r = http(proxy, "GET", proxy_url(proxy) + "/cache/stats")
    assert r["status"] == 200, r["body"]
    stats: dict[str, Any] = r["json"]
    return stats


def generate(proxy: Any, text: str) -> None:
    body = {"model": "llama3.2", "prompt": f"ECHO:{text}", "stream": False}
    r = http(proxy, "POST", proxy_url(proxy) + "/api/generate", body)
    assert r["status"] == 200, r["body"]
    assert json.loads(r["body"])["response"] == text
