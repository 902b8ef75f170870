"""Replication + Sentinel as deployed: one primary, two replicas, three authenticated
Sentinels that agree on it, hardened files, and a proxy that found the primary."""

from __future__ import annotations

from typing import Any

from gplib import (
    FLAVOUR,
    OTHER_FLAVOUR,
    PROXY_UNIT,
    REDIS_UNIT,
    SECRET_DIR,
    cmdlines,
    mount_sandbox_enforced,
    name_of,
    podman_exec_stdin,
    process_sandbox,
    redis_cli,
    redis_tls_args,
)
from sentinel_lib import (
    SENTINEL_CONF,
    SENTINEL_PORT,
    SERVICE,
    address,
    cache_health,
    replication,
    sentinel,
    sentinel_primary,
)

SENTINEL_UNIT = FLAVOUR.sentinel_unit


def test_redis_and_sentinel_run_on_every_redis_host(redis_hosts: list[Any]) -> None:
    for host in redis_hosts:
        for unit in (REDIS_UNIT, SENTINEL_UNIT):
            service = host.service(unit)
            assert service.is_running, (host.backend.name, unit)
            assert service.is_enabled, (host.backend.name, unit)


def test_the_inventorys_server_flavour_runs(
    redis_hosts: list[Any], proxy_creds: tuple[str, str]
) -> None:
    """redis_server_flavour decides the packages, the programs that run and the server
    that answers; the other flavour is not even installed."""
    for host in redis_hosts:
        for unit, package in (
            (REDIS_UNIT, FLAVOUR.server_package),
            (SENTINEL_UNIT, FLAVOUR.sentinel_package),
        ):
            assert host.package(package).is_installed, (name_of(host), package)
            pid = host.run("systemctl show -P MainPID %s", unit).stdout.strip()
            exe = host.run("readlink /proc/%s/exe", pid).stdout.strip()
            # valkey-server and valkey-sentinel are links to one binary, as in Redis.
            assert exe.startswith(f"/usr/bin/{FLAVOUR.name}-"), (name_of(host), unit, exe)
        for package in (OTHER_FLAVOUR.server_package, OTHER_FLAVOUR.sentinel_package):
            assert not host.package(package).is_installed, (name_of(host), package)
        info = redis_cli(host, "INFO server", user=proxy_creds[0], password=proxy_creds[1])
        assert info.rc == 0, info.stderr
        # Valkey reports valkey_version (and redis_version 7.2.4 for old clients).
        assert ("valkey_version:" in info.stdout) == (FLAVOUR.name == "valkey"), info.stdout[:400]


def test_one_primary_and_two_synced_replicas(
    redis_hosts: list[Any], proxy_creds: tuple[str, str]
) -> None:
    roles = [replication(host, proxy_creds) for host in redis_hosts]
    assert sorted(r["role"] for r in roles) == ["master", "slave", "slave"], roles
    primary = redis_hosts[[r["role"] for r in roles].index("master")]
    for r in roles:
        if r["role"] == "slave":
            assert r["master_host"] == address(primary)
            assert r["master_link_status"] == "up", r


def test_every_sentinel_names_the_primary(
    redis_hosts: list[Any], proxy_creds: tuple[str, str], sentinel_password: str
) -> None:
    primary = next(h for h in redis_hosts if replication(h, proxy_creds)["role"] == "master")
    for host in redis_hosts:
        assert sentinel_primary(host, sentinel_password) == address(primary)


def test_sentinel_refuses_clients_without_the_password(redis_hosts: list[Any]) -> None:
    for host in redis_hosts:
        tls = redis_tls_args(host, SENTINEL_CONF)
        out = host.run(f"{FLAVOUR.cli} -h 127.0.0.1 -p %s {tls}PING", str(SENTINEL_PORT))
        assert "NOAUTH" in out.stdout + out.stderr, out.stdout


def test_wrong_sentinel_password_is_refused(redis_hosts: list[Any]) -> None:
    tls = redis_tls_args(redis_hosts[0], SENTINEL_CONF)
    out = redis_hosts[0].run(
        f"REDISCLI_AUTH=wrong-password-for-the-test {FLAVOUR.cli} --no-auth-warning -h 127.0.0.1 -p %s "
        f"{tls}PING",
        str(SENTINEL_PORT),
    )
    assert "WRONGPASS" in out.stdout + out.stderr or "invalid" in out.stdout + out.stderr


def test_files_the_role_owns_and_the_runtime_files(redis_hosts: list[Any]) -> None:
    for host in redis_hosts:
        for path in (f"{FLAVOUR.conf_dir}/replication.conf", SENTINEL_CONF):
            f = host.file(path)
            assert (f.user, f.group, f.mode) == ("root", FLAVOUR.user, 0o640), path
        runtime = host.file(f"{FLAVOUR.conf_dir}/runtime")
        assert (runtime.user, runtime.group, runtime.mode) == (FLAVOUR.user, FLAVOUR.user, 0o750)
        for path in (FLAVOUR.runtime_conf, f"{FLAVOUR.conf_dir}/runtime/sentinel.conf"):
            f = host.file(path)
            assert f.user == FLAVOUR.user and f.mode & 0o077 == 0, (path, f.mode)


def test_sentinel_sandbox_is_in_force(redis_hosts: list[Any]) -> None:
    """The running Sentinel: its own user, no capabilities, no_new_privs, a seccomp filter,
    a user namespace of its own and, where systemd can set one up here, a read-only /."""
    for host in redis_hosts:
        pid = int(host.run("systemctl show -P MainPID %s", SENTINEL_UNIT).stdout.strip())
        assert pid > 0
        assert host.run("ps -o user= -p %s", str(pid)).stdout.strip() == FLAVOUR.user
        sandbox = process_sandbox(host, pid)
        assert sandbox == {
            "CapEff": "0000000000000000",
            "NoNewPrivs": "1",
            "Seccomp": "2",
            "own_user_namespace": "True",
        }, (name_of(host), sandbox)
        if not mount_sandbox_enforced(host):
            continue  # systemd 257 in an unprivileged podman host: see mount_sandbox_enforced
        for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[4] == "/":
                assert "ro" in fields[5].split(","), line


def test_sentinel_passwords_in_no_command_line(
    redis_hosts: list[Any],
    proxy_host: Any,
    sentinel_password: str,
    sentinel_client: tuple[str, str],
) -> None:
    for host in [*redis_hosts, proxy_host]:
        assert not [c for c in cmdlines(host) if sentinel_password in c]
        assert not [c for c in cmdlines(host) if sentinel_client[1] in c]


def test_the_proxys_sentinel_user_may_only_ask_for_the_primary(
    redis_hosts: list[Any], proxy_creds: tuple[str, str], sentinel_client: tuple[str, str]
) -> None:
    user, password = sentinel_client
    assert user != "default"
    primary = next(h for h in redis_hosts if replication(h, proxy_creds)["role"] == "master")
    for host in redis_hosts:
        asked = sentinel(host, password, f"SENTINEL GET-MASTER-ADDR-BY-NAME {SERVICE}", user=user)
        assert asked.stdout.split() == [address(primary), "6379"], asked.stdout + asked.stderr
        masters = sentinel(host, password, "SENTINEL MASTERS", user=user)
        assert SERVICE in masters.stdout.split(), masters.stdout + masters.stderr
    host = redis_hosts[0]
    for command in (
        f"SENTINEL FAILOVER {SERVICE}",
        f"SENTINEL SET {SERVICE} quorum 1",
        f"SENTINEL REMOVE {SERVICE}",
        "SENTINEL CONFIG GET sentinel-pass",
        f"SENTINEL RESET {SERVICE}",
        "ACL LIST",
        "SHUTDOWN",
    ):
        out = sentinel(host, password, command, user=user)
        assert "NOPERM" in out.stdout + out.stderr, (command, out.stdout, out.stderr)
    assert redis_hosts[0].service(SENTINEL_UNIT).is_running


def test_the_sentinel_admin_password_stays_on_the_redis_hosts(
    proxy_host: Any, sentinel_password: str, sentinel_client: tuple[str, str]
) -> None:
    assert sentinel_client[1] != sentinel_password
    podman_exec_stdin(
        name_of(proxy_host), f"umask 077; mkdir -p {SECRET_DIR}; cat > {SECRET_DIR}/admin", sentinel_password
    )
    found = proxy_host.run(
        f"grep -rlF -f {SECRET_DIR}/admin /etc/guard-proxy /opt/guard-proxy/current/bin /run/credentials; "
        f"rm -f {SECRET_DIR}/admin"
    )
    assert found.stdout.strip() == "", found.stdout


def test_proxy_serves_from_the_primary_found_by_sentinel(
    proxy_host: Any, redis_hosts: list[Any], proxy_creds: tuple[str, str]
) -> None:
    assert proxy_host.service(PROXY_UNIT).is_running
    primary = next(h for h in redis_hosts if replication(h, proxy_creds)["role"] == "master")
    health = cache_health(proxy_host)
    assert health["active_backend"] == "redis", health
    assert health["redis_address"].startswith(f"{address(primary)}:6379/0 (sentinel mymaster)"), health


def test_the_sentinel_password_reaches_the_proxy_as_a_credential_only(
    proxy_host: Any, sentinel_client: tuple[str, str]
) -> None:
    unit = proxy_host.run("systemctl cat %s", PROXY_UNIT).stdout
    assert "LoadCredential=sentinel_password:" in unit
    assert "EnvironmentFile" not in unit
    assert not proxy_host.file("/etc/guard-proxy/credentials/sentinel.env").exists
    password = sentinel_client[1]
    pid = proxy_host.run("systemctl show -P MainPID %s", PROXY_UNIT).stdout.strip()
    environ = proxy_host.run("cat /proc/%s/environ", pid).stdout
    assert "REDIS_SENTINEL_PASSWORD_FILE=" in environ
    # No process on the host (the supervisor, each worker, anything else) has the
    # password in its environment; the scan must have read the proxy's own environ.
    podman_exec_stdin(
        name_of(proxy_host), f"umask 077; mkdir -p {SECRET_DIR}; cat > {SECRET_DIR}/client", password
    )
    scan = proxy_host.run(
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null > /tmp/gp-env || continue; "
        "echo read $f; grep -qxF REDIS_SENTINEL_PASSWORD_FILE=/run/credentials/guard-proxy.service/"
        f"sentinel_password /tmp/gp-env && echo proxy $f; grep -qaF -f {SECRET_DIR}/client /tmp/gp-env "
        f"&& echo leaked $f; done; rm -f /tmp/gp-env {SECRET_DIR}/client"
    )
    lines = scan.stdout.splitlines()
    assert f"proxy /proc/{pid}/environ" in lines, scan.stdout
    assert [line for line in lines if line.startswith("leaked ")] == [], scan.stdout
    assert not any(password in line for line in cmdlines(proxy_host))


def test_check_redis_through_the_sentinels_with_the_service_credentials(proxy_host: Any) -> None:
    """What the role's post-deploy check runs: exit 0, the primary named, no secret printed.
    With mutual TLS the client key is a credential too."""
    key = ""
    if proxy_host.file("/etc/guard-proxy/credentials/redis_tls_key").exists:
        key = (
            "--property LoadCredential=redis_tls_key:/etc/guard-proxy/credentials/redis_tls_key "
            "--setenv REDIS_TLS_KEY_FILE=/run/credentials/gp-test-check-redis.service/redis_tls_key "
        )
    run = proxy_host.run(
        "systemd-run --quiet --wait --pipe --collect --unit gp-test-check-redis "
        "--property User=guard-proxy --property Group=guard-proxy "
        "--property LoadCredential=redis_password:/etc/guard-proxy/credentials/redis_password "
        "--property LoadCredential=sentinel_password:/etc/guard-proxy/credentials/sentinel_password "
        "--setenv REDIS_PASSWORD_FILE=/run/credentials/gp-test-check-redis.service/redis_password "
        "--setenv REDIS_SENTINEL_PASSWORD_FILE="
        "/run/credentials/gp-test-check-redis.service/sentinel_password "
        + key
        + "/opt/guard-proxy/current/bin/guard-proxy check-redis --config /etc/guard-proxy/config.yaml"
    )
    assert run.rc == 0, run.stdout + run.stderr
    secret = proxy_host.file("/etc/guard-proxy/credentials/sentinel_password").content_string
    assert secret not in run.stdout + run.stderr
