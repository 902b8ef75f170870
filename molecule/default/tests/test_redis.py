"""Redis on redis1: running, bound narrowly, authenticated, least privilege, quiet start."""

from __future__ import annotations

import re
from typing import Any

import pytest
from gplib import (
    REDIS_UNIT,
    assert_sandbox_applied,
    cmdlines,
    main_pid,
    redis_cli,
    redis_port,
)


def test_redis_active_and_enabled(redis_host: Any) -> None:
    svc = redis_host.service(REDIS_UNIT)
    assert svc.is_running
    assert svc.is_enabled


def test_redis_runs_as_redis(redis_host: Any) -> None:
    pid = main_pid(redis_host, REDIS_UNIT)
    assert pid > 0
    assert redis_host.run("ps -o user= -p %s", str(pid)).stdout.strip() == "redis"


def test_redis_sandbox_is_really_applied(redis_host: Any) -> None:
    """The drop-in's hardening holds in the running process, not only in systemd-analyze's
    reading of the unit: no capabilities, no_new_privs, a seccomp filter, a user namespace of
    its own, and (wherever systemd can set one up in these hosts: not systemd 257 on Debian
    13, see gplib.mount_sandbox_enforced) its own mount namespace with a read-only / (all
    checked by gplib.assert_sandbox_applied)."""
    assert_sandbox_applied(redis_host, main_pid(redis_host, REDIS_UNIT))


def _own_ipv4(host: Any) -> set[str]:
    out = host.run("ip -4 -o addr show scope global").stdout
    return set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out))


def test_redis_listens_only_on_loopback_and_private_address(redis_host: Any) -> None:
    port = redis_port(redis_host)
    out = redis_host.run("ss -Hltn sport = :%s", str(port)).stdout
    addrs = {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}
    assert addrs, "redis listens nowhere"
    assert not addrs & {"0.0.0.0", "*", "[::]", "[::ffff:0.0.0.0]"}, f"wildcard bind: {addrs}"
    assert addrs - {"[::1]"} == {"127.0.0.1"} | _own_ipv4(redis_host)


def test_ping_without_credentials_is_refused(redis_host: Any) -> None:
    out = redis_cli(redis_host, "PING")
    assert "NOAUTH" in out.stdout + out.stderr
    assert "PONG" not in out.stdout


def test_wrong_password_is_refused(redis_host: Any, proxy_creds: tuple[str, str]) -> None:
    user, _ = proxy_creds
    out = redis_cli(redis_host, "PING", user=user, password="not-the-password-0123456789")
    assert "WRONGPASS" in out.stdout + out.stderr


def test_proxy_user_can_use_its_prefix(redis_host: Any, proxy_creds: tuple[str, str]) -> None:
    user, pw = proxy_creds
    assert redis_cli(redis_host, "PING", user=user, password=pw).stdout.strip() == "PONG"
    key = "guard:molecule-probe"
    assert redis_cli(redis_host, "SET %s 1 EX 60", key, user=user, password=pw).stdout.strip() == "OK"
    assert redis_cli(redis_host, "DEL %s", key, user=user, password=pw).stdout.strip() == "1"


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "dir"),
        ("CONFIG", "SET", "dir", "/tmp"),
        ("DEBUG", "SLEEP", "0"),
        ("SHUTDOWN", "NOSAVE"),
        ("ACL", "LIST"),
        ("MODULE", "LIST"),
        ("KEYS", "*"),
        ("SET", "other:key", "1"),
    ],
    ids=" ".join,
)
def test_proxy_user_is_denied(
    redis_host: Any, proxy_creds: tuple[str, str], command: tuple[str, ...]
) -> None:
    user, pw = proxy_creds
    out = redis_cli(redis_host, " ".join(["%s"] * len(command)), *command, user=user, password=pw)
    answer = out.stdout + out.stderr
    # DEBUG is refused by enable-debug-command before the ACL is consulted.
    assert "NOPERM" in answer or "DEBUG command not allowed" in answer, answer
    assert redis_host.service(REDIS_UNIT).is_running


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        ("/etc/redis/redis.conf", "root", "redis", 0o640),
        ("/etc/redis/users.acl", "root", "redis", 0o640),
        ("/var/lib/redis", "redis", "redis", 0o750),
    ],
)
def test_redis_file_modes(redis_host: Any, path: str, owner: str, group: str, mode: int) -> None:
    f = redis_host.file(path)
    assert f.exists
    assert (f.user, f.group, oct(f.mode)) == (owner, group, oct(mode))


def test_no_warning_in_redis_journal_since_start(redis_host: Any) -> None:
    pid = main_pid(redis_host, REDIS_UNIT)
    out = redis_host.run("journalctl --no-pager -o cat _PID=%s", str(pid)).stdout
    assert "Ready to accept connections" in out, "start-up log not found in the journal"
    warnings = [line for line in out.splitlines() if "WARNING" in line]
    assert warnings == []


def test_no_secret_on_any_redis_host_command_line(redis_host: Any, proxy_creds: tuple[str, str]) -> None:
    _, pw = proxy_creds
    lines = cmdlines(redis_host)
    assert any("redis-server" in line for line in lines)
    assert not [line for line in lines if pw in line]
