"""Helpers of scenario sentinel: replication roles, Sentinel queries, host addresses."""

from __future__ import annotations

import json
from typing import Any

from gplib import SECRET_DIR, http, name_of, podman_exec_stdin, proxy_url, redis_cli, redis_tls_args

SENTINEL_PORT = 26379
# The Sentinel's settings the role owns (tls-port and the TLS files when TLS is on).
SENTINEL_CONF = "/etc/redis/sentinel-static.conf"
SERVICE = "mymaster"


def address(host: Any) -> str:
    """The host's address on the scenario network."""
    out = host.run("ip -4 -o addr show scope global").stdout.split()
    return out[out.index("inet") + 1].split("/")[0]


def replication(host: Any, creds: tuple[str, str]) -> dict[str, str]:
    """INFO replication of the host's Redis, as the proxy's ACL user (it has +info)."""
    cmd = redis_cli(host, "INFO replication", user=creds[0], password=creds[1])
    assert cmd.rc == 0, cmd.stderr
    fields = {}
    for line in cmd.stdout.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key] = value
    return fields


def sentinel(host: Any, password: str, args: str) -> Any:
    """redis-cli against the host's Sentinel (over TLS when its file says so); the password
    travels through a 0600 file."""
    podman_exec_stdin(
        name_of(host),
        f"umask 077; mkdir -p {SECRET_DIR}; cat > {SECRET_DIR}/sentinel-pass",
        password,
    )
    return host.run(
        f'REDISCLI_AUTH="$(cat {SECRET_DIR}/sentinel-pass)" '
        f"redis-cli --no-auth-warning --raw -h 127.0.0.1 -p {SENTINEL_PORT} "
        f"{redis_tls_args(host, SENTINEL_CONF)}{args}"
    )


def sentinel_primary(host: Any, password: str) -> str:
    """The primary's address as the host's Sentinel sees it ("" when it cannot say)."""
    cmd = sentinel(host, password, f"SENTINEL GET-MASTER-ADDR-BY-NAME {SERVICE}")
    lines = cmd.stdout.split()
    return lines[0] if cmd.rc == 0 and len(lines) == 2 else ""


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
