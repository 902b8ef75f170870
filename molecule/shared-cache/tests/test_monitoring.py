"""Monitoring: Prometheus on lb1 (group `monitoring`) and redis_exporter on redis1.

Prometheus scrapes both proxies, the exporter and lb1's own HAProxy with the rules of
monitoring/prometheus/rules; the exporter logs in as an ACL user that reads no key, with a
password that is on no command line. Stopping Redis puts the "serving from memory" alert
(GuardProxyOnMemoryCache, ``for: 5m``) into pending, starting it again resolves it; the
scenario evaluates every 2 s (group_vars/all/monitoring.yml). Runs last (file order): the
rolling tests before it restart every proxy, this one stops Redis.
"""

from __future__ import annotations

import json
from typing import Any

from gplib import REDIS_UNIT, cmdlines, exposure, http, redis_cli, wait_for

PROMETHEUS = "http://127.0.0.1:9090"
PROMETHEUS_UNIT = "prometheus.service"
EXPORTER_UNIT = "prometheus-redis-exporter.service"
EXPORTER_USER = "redis-exporter"
EXPORTER_PASSWORD_FILE = "/etc/prometheus-redis-exporter/redis-password.json"
MEMORY_ALERT = "GuardProxyOnMemoryCache"
PROXIES = {"proxy1:8080", "proxy2:8080"}


def _api(lb1: Any, path: str) -> Any:
    answer = http(lb1, "GET", PROMETHEUS + path)
    assert answer["status"] == 200, answer["body"][-500:]
    assert answer["json"]["status"] == "success", answer["body"][-500:]
    return answer["json"]["data"]


def _targets(lb1: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Active targets by (job, instance)."""
    data = _api(lb1, "/api/v1/targets?state=active")
    return {(t["labels"]["job"], t["labels"]["instance"]): t for t in data["activeTargets"]}


def _alerts(lb1: Any, name: str) -> dict[str, str]:
    """State (pending or firing) of the alerts called ``name``, by instance."""
    return {
        a["labels"].get("instance", ""): a["state"]
        for a in _api(lb1, "/api/v1/alerts")["alerts"]
        if a["labels"].get("alertname") == name
    }


def _exporter_password(redis_host: Any) -> str:
    passwords = json.loads(redis_host.file(EXPORTER_PASSWORD_FILE).content_string)
    (password,) = passwords.values()
    assert isinstance(password, str) and password
    return password


def test_prometheus_runs_sandboxed_without_the_node_exporter(lb1: Any) -> None:
    assert lb1.service(PROMETHEUS_UNIT).is_running
    assert lb1.service(PROMETHEUS_UNIT).is_enabled
    assert http(lb1, "GET", PROMETHEUS + "/-/ready")["status"] == 200
    assert exposure(lb1, PROMETHEUS_UNIT) <= 2.0
    # Installed without Recommends: no second exporter on every address.
    assert not lb1.package("prometheus-node-exporter").is_installed
    # The rules checked by promtool are the repository's, loaded.
    groups = _api(lb1, "/api/v1/rules")["groups"]
    names = {r["name"] for g in groups for r in g["rules"]}
    assert {MEMORY_ALERT, "GuardProxyDown", "RedisDown"} <= names
    assert lb1.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0


def test_prometheus_scrapes_the_proxies_over_verified_https(lb1: Any) -> None:
    """The proxies serve HTTPS only (haproxy_backend_tls): Prometheus scrapes them on
    https:// and verifies them against the CA the role installed (monitoring_guard_proxy_tls_ca)."""
    targets = _targets(lb1)
    for proxy in PROXIES:
        assert targets[("guard-proxy", proxy)]["scrapeUrl"] == f"https://{proxy}/metrics", targets[
            ("guard-proxy", proxy)
        ]
    cfg = lb1.file("/etc/prometheus/prometheus.yml").content_string
    assert "ca_file: \"/etc/prometheus/guard-proxy-ca.pem\"" in cfg
    ca = lb1.file("/etc/prometheus/guard-proxy-ca.pem")
    assert ca.exists and "BEGIN CERTIFICATE" in ca.content_string


def test_prometheus_scrapes_the_proxies_the_exporter_and_haproxy(lb1: Any) -> None:
    want = {("guard-proxy", p) for p in PROXIES} | {("redis", "redis1:9121"), ("haproxy", "lb1:8404")}

    def all_up() -> dict[tuple[str, str], str] | None:
        health = {key: t["health"] for key, t in _targets(lb1).items()}
        return health if all(health.get(key) == "up" for key in want) else None

    health = wait_for(all_up, timeout=60, interval=2)
    assert health, f"targets not all up: {_targets(lb1)}"
    # The exporter logged into Redis (redis_up comes from its INFO).
    result = _api(lb1, "/api/v1/query?query=redis_up")["result"]
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


def test_exporter_password_is_on_no_command_line(redis_host: Any, lb1: Any) -> None:
    password = _exporter_password(redis_host)
    for host in (redis_host, lb1):
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
    redis_host: Any, lb1: Any
) -> None:
    assert not _alerts(lb1, MEMORY_ALERT), "the alert is active before Redis is stopped"
    redis_host.check_output("systemctl stop %s", REDIS_UNIT)
    try:
        pending = wait_for(
            lambda: (a := _alerts(lb1, MEMORY_ALERT)) and PROXIES <= set(a) and a,
            timeout=90,
            interval=2,
        )
        assert pending, f"no {MEMORY_ALERT} for both proxies: {_alerts(lb1, MEMORY_ALERT)}"
        assert set(pending.values()) <= {"pending", "firing"}, pending
        # The exporter sees Redis down too (RedisDown, for: 1m, is at least pending).
        assert wait_for(lambda: "redis1:9121" in _alerts(lb1, "RedisDown"), timeout=30, interval=2)
    finally:
        redis_host.check_output("systemctl start %s", REDIS_UNIT)
    resolved = wait_for(lambda: not _alerts(lb1, MEMORY_ALERT), timeout=90, interval=2)
    assert resolved, f"{MEMORY_ALERT} still active after Redis returned: {_alerts(lb1, MEMORY_ALERT)}"
    assert wait_for(lambda: not _alerts(lb1, "RedisDown"), timeout=60, interval=2)
