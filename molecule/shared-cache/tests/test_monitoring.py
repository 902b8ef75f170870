"""Monitoring: Prometheus on lb1 (Debian 12) and lb2 (Debian 13), the `monitoring` group, and
redis_exporter on redis1.

Each Prometheus scrapes both proxies, the exporter and its own host's HAProxy with the rules of
monitoring/prometheus/rules; the exporter logs in as an ACL user that reads no key, with a
password that is on no command line. Stopping Redis puts the "serving from memory" alert
(GuardProxyOnMemoryCache, ``for: 5m``) into pending, starting it again resolves it; the
scenario evaluates every 2 s (group_vars/all/monitoring.yml), on both monitoring hosts at
once. Versions come from each host (its release's Prometheus, and the one the role names for
that release). Runs last (file order): the rolling tests before it restart every proxy, this one
stops Redis.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from gplib import (
    REDIS_UNIT,
    assert_sandbox_applied,
    cmdlines,
    exposure,
    http,
    main_pid,
    name_of,
    redis_cli,
    role_release_claim,
    upstream_version,
    wait_for,
)

PROMETHEUS = "http://127.0.0.1:9090"
PROMETHEUS_UNIT = "prometheus.service"
EXPORTER_UNIT = "prometheus-redis-exporter.service"
EXPORTER_USER = "redis-exporter"
EXPORTER_PASSWORD_FILE = "/etc/prometheus-redis-exporter/redis-password.json"
MEMORY_ALERT = "GuardProxyOnMemoryCache"
PROXIES = {"proxy1:8080", "proxy2:8080"}
MONITORING_HOSTS = ("lb1", "lb2")


def _api(mon: Any, path: str) -> Any:
    answer = http(mon, "GET", PROMETHEUS + path)
    assert answer["status"] == 200, answer["body"][-500:]
    assert answer["json"]["status"] == "success", answer["body"][-500:]
    return answer["json"]["data"]


def _targets(mon: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Active targets by (job, instance)."""
    data = _api(mon, "/api/v1/targets?state=active")
    return {(t["labels"]["job"], t["labels"]["instance"]): t for t in data["activeTargets"]}


def _alerts(mon: Any, name: str) -> dict[str, str]:
    """State (pending or firing) of the alerts called ``name``, by instance."""
    return {
        a["labels"].get("instance", ""): a["state"]
        for a in _api(mon, "/api/v1/alerts")["alerts"]
        if a["labels"].get("alertname") == name
    }


def _exporter_password(redis_host: Any) -> str:
    passwords = json.loads(redis_host.file(EXPORTER_PASSWORD_FILE).content_string)
    (password,) = passwords.values()
    assert isinstance(password, str) and password
    return password


@pytest.mark.parametrize("name", MONITORING_HOSTS)
def test_prometheus_runs_sandboxed_without_the_node_exporter(
    name: str, request: pytest.FixtureRequest
) -> None:
    mon = request.getfixturevalue(name)
    assert mon.service(PROMETHEUS_UNIT).is_running
    assert mon.service(PROMETHEUS_UNIT).is_enabled
    assert http(mon, "GET", PROMETHEUS + "/-/ready")["status"] == 200
    assert exposure(mon, PROMETHEUS_UNIT) <= 2.0
    # The drop-in's hardening in the running process (the mount sandbox where systemd sets
    # one up in these hosts: Debian 12, not 13's systemd 257).
    assert_sandbox_applied(mon, main_pid(mon, PROMETHEUS_UNIT))
    assert mon.process.get(pid=main_pid(mon, PROMETHEUS_UNIT)).user == "prometheus"
    # Installed without Recommends: no second exporter on every address.
    assert not mon.package("prometheus-node-exporter").is_installed
    # The rules checked by promtool are the repository's, loaded.
    groups = _api(mon, "/api/v1/rules")["groups"]
    names = {r["name"] for g in groups for r in g["rules"]}
    assert {MEMORY_ALERT, "GuardProxyDown", "RedisDown"} <= names
    # The host's own promtool (its release's) accepts the rendered config and the rules.
    check = mon.run("promtool check config /etc/prometheus/prometheus.yml")
    assert check.rc == 0, check.stdout + check.stderr


@pytest.mark.parametrize("name", MONITORING_HOSTS)
def test_prometheus_is_the_release_the_role_names(name: str, request: pytest.FixtureRequest) -> None:
    """The running Prometheus is the host's Debian package, and its version is the one the
    role's tested-platforms list gives for the host's release (Debian 12: 2.42, 13: 2.53)."""
    mon = request.getfixturevalue(name)
    # Debian's builds say e.g. "2.42.0+ds"; the package "2.42.0+ds-5+deb12u1".
    running = upstream_version(_api(mon, "/api/v1/status/buildinfo")["version"])
    assert upstream_version(mon.package("prometheus").version) == running
    promtool = mon.check_output("promtool --version").split()
    assert upstream_version(promtool[promtool.index("version") + 1]) == running, promtool
    major_minor = ".".join(running.split(".")[:2])
    assert role_release_claim("monitoring", mon).endswith(f"Prometheus {major_minor}"), running


@pytest.mark.parametrize("name", MONITORING_HOSTS)
def test_prometheus_scrapes_the_proxies_over_verified_https(
    name: str, request: pytest.FixtureRequest
) -> None:
    """The proxies serve HTTPS only (haproxy_backend_tls): each Prometheus scrapes them on
    https:// and verifies them against the CA the role installed (monitoring_guard_proxy_tls_ca)."""
    mon = request.getfixturevalue(name)
    targets = _targets(mon)
    for proxy in PROXIES:
        assert targets[("guard-proxy", proxy)]["scrapeUrl"] == f"https://{proxy}/metrics", targets[
            ("guard-proxy", proxy)
        ]
    cfg = mon.file("/etc/prometheus/prometheus.yml").content_string
    assert "ca_file: \"/etc/prometheus/guard-proxy-ca.pem\"" in cfg
    ca = mon.file("/etc/prometheus/guard-proxy-ca.pem")
    assert ca.exists and "BEGIN CERTIFICATE" in ca.content_string


@pytest.mark.parametrize("name", MONITORING_HOSTS)
def test_prometheus_scrapes_the_proxies_the_exporter_and_haproxy(
    name: str, request: pytest.FixtureRequest
) -> None:
    """Each monitoring host scrapes both proxies, the exporter and its own HAProxy (whose
    statistics listen on loopback: another host's are not reachable)."""
    mon = request.getfixturevalue(name)
    want = {("guard-proxy", p) for p in PROXIES} | {
        ("redis", "redis1:9121"),
        ("haproxy", f"{name}:8404"),
    }

    def all_up() -> dict[tuple[str, str], str] | None:
        health = {key: t["health"] for key, t in _targets(mon).items()}
        return health if all(health.get(key) == "up" for key in want) else None

    health = wait_for(all_up, timeout=60, interval=2)
    assert health, f"targets not all up on {name}: {_targets(mon)}"
    assert {key for key in health if key[0] == "haproxy"} == {("haproxy", f"{name}:8404")}
    # The exporter logged into Redis (redis_up comes from its INFO).
    result = _api(mon, "/api/v1/query?query=redis_up")["result"]
    assert [r["value"][1] for r in result if r["metric"]["instance"] == "redis1:9121"] == ["1"]


def test_exporter_runs_sandboxed_as_its_own_acl_user(redis_host: Any) -> None:
    assert redis_host.service(EXPORTER_UNIT).is_running
    assert exposure(redis_host, EXPORTER_UNIT) <= 2.0
    password_file = redis_host.file(EXPORTER_PASSWORD_FILE)
    assert (password_file.user, password_file.mode) == ("root", 0o600)
    clients = redis_cli(
        redis_host, "CLIENT LIST", user=EXPORTER_USER, password=_exporter_password(redis_host)
    )
    # CLIENT LIST is not granted: the exporter's own user cannot list connections.
    assert "NOPERM" in clients.stdout + clients.stderr


def test_exporter_user_reads_no_key(redis_host: Any) -> None:
    password = _exporter_password(redis_host)
    info = redis_cli(redis_host, "INFO server", user=EXPORTER_USER, password=password)
    assert "redis_version" in info.stdout, info.stdout + info.stderr
    for command in ("GET guard:probe", "SCAN 0", "KEYS 'guard:*'", "CONFIG GET masterauth", "SET guard:x 1"):
        out = redis_cli(redis_host, command, user=EXPORTER_USER, password=password)
        assert "NOPERM" in out.stdout + out.stderr, f"{command}: {out.stdout}{out.stderr}"


def test_exporter_password_is_on_no_command_line(redis_host: Any, lb1: Any, lb2: Any) -> None:
    password = _exporter_password(redis_host)
    for host in (redis_host, lb1, lb2):
        assert not [line for line in cmdlines(host) if password in line]
    # Not in the exporter's environment either: only the credential file's path, and no
    # EnvironmentFile (Debian's /etc/default file is reset by the drop-in).
    unit_env = redis_host.check_output("systemctl show -P Environment %s", EXPORTER_UNIT)
    assert "REDIS_PASSWORD_FILE=" in unit_env and "REDIS_PASSWORD=" not in unit_env
    assert not redis_host.check_output("systemctl show -P EnvironmentFiles %s", EXPORTER_UNIT)
    pid = redis_host.check_output("systemctl show -P MainPID %s", EXPORTER_UNIT)
    environ = redis_host.run("tr '\\0' '\\n' < /proc/%s/environ", pid)
    if environ.rc == 0:  # root may read it (it owns the unit's user namespace)
        assert password not in environ.stdout


def test_memory_alert_goes_pending_without_redis_and_resolves_after(
    redis_host: Any, lb1: Any, lb2: Any
) -> None:
    """One Redis stop, seen by both monitoring hosts (Debian 12's and 13's Prometheus)."""
    monitors = (lb1, lb2)
    for mon in monitors:
        assert not _alerts(mon, MEMORY_ALERT), f"the alert is active on {name_of(mon)} before Redis is stopped"
    redis_host.check_output("systemctl stop %s", REDIS_UNIT)
    try:
        for mon in monitors:
            pending = wait_for(
                lambda m=mon: (a := _alerts(m, MEMORY_ALERT)) and PROXIES <= set(a) and a,
                timeout=90,
                interval=2,
            )
            assert pending, f"no {MEMORY_ALERT} for both proxies on {name_of(mon)}: {_alerts(mon, MEMORY_ALERT)}"
            assert set(pending.values()) <= {"pending", "firing"}, pending
            # The exporter sees Redis down too (RedisDown, for: 1m, is at least pending).
            assert wait_for(
                lambda m=mon: "redis1:9121" in _alerts(m, "RedisDown"), timeout=30, interval=2
            ), name_of(mon)
    finally:
        redis_host.check_output("systemctl start %s", REDIS_UNIT)
    for mon in monitors:
        resolved = wait_for(lambda m=mon: not _alerts(m, MEMORY_ALERT), timeout=90, interval=2)
        assert resolved, f"{MEMORY_ALERT} still active on {name_of(mon)} after Redis returned: {_alerts(mon, MEMORY_ALERT)}"
        assert wait_for(lambda m=mon: not _alerts(m, "RedisDown"), timeout=60, interval=2), name_of(mon)
