"""Host firewall (roles/firewall): the stack's ports open only to the stack's hosts.

redis1 lets the proxies (and itself) reach Redis on 6379 and the monitoring hosts lb1 and
lb2 reach redis_exporter on 9121; proxy1 and proxy2 let lb1 and lb2 (load balancers, also
monitoring) reach 8080; lb1 and lb2 open the front door to everyone and HAProxy's
statistics port to the monitoring hosts, and keep Prometheus's 9090 to themselves.
Everything else sent to those ports is dropped and counted in the named counters of table
inet guard_stack, and the table survives what Debian's nftables.service does to the ruleset
(reload, restart) on Debian 12 (redis1: nftables 1.0.6) and Debian 13 (lb2: 1.1.3).
Runs first (file order): the other files check that what must pass
still does (cache hits through Redis, the front door, Prometheus's scrapes).
"""

from __future__ import annotations

from typing import Any

import pytest
from gplib import (
    exposure,
    nft_counter,
    role_release_claim,
    run_playbook,
    tcp_connects,
    upstream_version,
    wait_for,
)

TABLE = "guard_stack"
UNIT = "guard-stack-firewall.service"
RULES = "/etc/guard-stack/firewall.nft"
REDIS_PORT = 6379
EXPORTER_PORT = 9121
PROXY_PORT = 8080
PROMETHEUS_PORT = 9090
STATS_PORT = 8404
ALL_HOSTS = ("redis_host", "proxy1", "proxy2", "lb1", "lb2")


@pytest.mark.parametrize("name", ALL_HOSTS)
def test_the_unit_loads_the_checked_table_at_boot(
    name: str, request: pytest.FixtureRequest
) -> None:
    host = request.getfixturevalue(name)
    unit = host.service(UNIT)
    assert unit.is_enabled and unit.is_running
    # A root oneshot with CAP_NET_ADMIN only, in the same sandbox bounds as the services.
    assert exposure(host, UNIT) <= 2.0
    rules = host.file(RULES)
    assert (rules.user, rules.group, rules.mode) == ("root", "root", 0o644)
    # The live table is the file's: the file checks clean and declares the same table.
    assert host.run("nft -c -f %s", RULES).rc == 0
    listed = host.check_output("nft list table inet %s", TABLE)
    assert "policy accept" in listed and 'iif "lo" accept' in listed
    # The host's own nft (its release's) is the one the role names for that release.
    nft = upstream_version(host.check_output("nft --version").split()[1].lstrip("v"))
    assert role_release_claim("firewall", host).endswith(f"nftables {nft}"), nft


def test_a_second_run_changes_nothing() -> None:
    """The firewall play on converged hosts: no task changed, so no reload (which would
    also reset the counters)."""
    run = run_playbook("playbooks/firewall.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    recap = run.stdout.rsplit("PLAY RECAP", 1)[-1]
    for host in ("redis1", "proxy1", "proxy2", "lb1", "lb2"):
        line = next(line for line in recap.splitlines() if line.startswith(host + " "))
        assert " changed=0 " in line and " failed=0 " in line, line


def test_only_the_stack_ports_are_governed(
    redis_host: Any, proxy1: Any, lb1: Any, lb2: Any
) -> None:
    redis_rules = redis_host.check_output("nft list chain inet %s input", TABLE)
    assert (
        f"tcp dport {REDIS_PORT} " in redis_rules and f"tcp dport {EXPORTER_PORT} " in redis_rules
    )
    assert f"tcp dport {PROXY_PORT} " not in redis_rules
    proxy_rules = proxy1.check_output("nft list chain inet %s input", TABLE)
    assert (
        f"tcp dport {PROXY_PORT} " in proxy_rules and f"tcp dport {REDIS_PORT} " not in proxy_rules
    )
    # No Sentinel in this scenario: no rule for its port.
    assert "26379" not in redis_rules
    # The load balancers: the front door and HAProxy's statistics; both (monitoring) also
    # Prometheus.
    lb1_rules = lb1.check_output("nft list chain inet %s input", TABLE)
    lb2_rules = lb2.check_output("nft list chain inet %s input", TABLE)
    for rules in (lb1_rules, lb2_rules):
        assert 'counter name "frontdoor_dropped" drop' in rules
        assert f"tcp dport {STATS_PORT} " in rules and f"tcp dport {REDIS_PORT} " not in rules
    assert f"tcp dport {PROMETHEUS_PORT} " in lb1_rules
    assert f"tcp dport {PROMETHEUS_PORT} " in lb2_rules


@pytest.mark.parametrize("name", ["proxy1", "proxy2"])
def test_the_proxies_reach_redis(
    name: str, request: pytest.FixtureRequest, redis_host: Any
) -> None:
    before = nft_counter(redis_host, TABLE, "redis_accepted")
    assert tcp_connects(request.getfixturevalue(name), "redis1", REDIS_PORT)
    assert nft_counter(redis_host, TABLE, "redis_accepted") > before


def test_redis_is_closed_to_a_host_of_neither_group(redis_host: Any, lb1: Any) -> None:
    """lb1 (loadbalancer, monitoring) is no Redis client: its SYNs are dropped and counted."""
    before = nft_counter(redis_host, TABLE, "redis_dropped")
    assert not tcp_connects(lb1, "redis1", REDIS_PORT, timeout=3)
    assert nft_counter(redis_host, TABLE, "redis_dropped") > before
    # Loopback is always let in (the exporter's own connection uses it).
    assert tcp_connects(redis_host, "127.0.0.1", REDIS_PORT)


@pytest.mark.parametrize("name", ["lb1", "lb2"])
def test_a_monitoring_host_reaches_the_exporter_and_a_proxy_does_not(
    name: str, request: pytest.FixtureRequest, redis_host: Any, proxy1: Any
) -> None:
    assert tcp_connects(request.getfixturevalue(name), "redis1", EXPORTER_PORT)
    before = nft_counter(redis_host, TABLE, "redis_exporter_dropped")
    assert not tcp_connects(proxy1, "redis1", EXPORTER_PORT, timeout=2)
    assert nft_counter(redis_host, TABLE, "redis_exporter_dropped") > before


@pytest.mark.parametrize("name", ["proxy1", "proxy2"])
def test_only_the_load_balancers_reach_a_proxy(
    name: str, request: pytest.FixtureRequest, redis_host: Any, lb1: Any, lb2: Any
) -> None:
    proxy = request.getfixturevalue(name)
    assert tcp_connects(lb1, name, PROXY_PORT)
    assert tcp_connects(lb2, name, PROXY_PORT)
    before = nft_counter(proxy, TABLE, "guard_proxy_dropped")
    # redis1 is neither a load balancer nor the monitoring host.
    assert not tcp_connects(redis_host, name, PROXY_PORT, timeout=3)
    assert nft_counter(proxy, TABLE, "guard_proxy_dropped") > before


def test_stopping_the_unit_opens_the_ports_and_starting_it_closes_them(
    redis_host: Any, lb1: Any
) -> None:
    """What a boot does: the enabled unit loads the rules file (and a stop removes the table)."""
    redis_host.check_output("systemctl stop %s", UNIT)
    try:
        assert redis_host.run("nft list table inet %s", TABLE).rc != 0
        assert wait_for(lambda: tcp_connects(lb1, "redis1", REDIS_PORT), timeout=10)
    finally:
        redis_host.check_output("systemctl start %s", UNIT)
    assert redis_host.run("nft list table inet %s", TABLE).rc == 0
    assert not tcp_connects(lb1, "redis1", REDIS_PORT, timeout=2)


def test_rules_nft_refuses_never_replace_the_loaded_ones(redis_host: Any) -> None:
    """A table name nft cannot parse: `nft -c` fails the play before the file is replaced."""
    rules_before = redis_host.file(RULES).sha256sum
    # -s: without the counters' values, which the scrapes keep moving.
    table_before = redis_host.check_output("nft -s list table inet %s", TABLE)
    run = run_playbook(
        "playbooks/firewall.yml", "--tags", "firewall_config", "-e", "firewall_table='no such'"
    )
    assert run.returncode != 0
    # Failures go to stderr (Molecule's ansible.cfg: display_failed_stderr).
    output = run.stdout + run.stderr
    assert "failed to validate" in output, output[-3000:]
    assert redis_host.file(RULES).sha256sum == rules_before
    assert redis_host.check_output("nft -s list table inet %s", TABLE) == table_before


def test_a_run_that_does_not_know_every_peer_stops(redis_host: Any) -> None:
    """--limit gathers facts of redis1 only: the proxies' addresses are unknown, and rules
    without them would shut the proxies out of Redis. The role stops instead."""
    rules_before = redis_host.file(RULES).sha256sum
    run = run_playbook("playbooks/firewall.yml", "--limit", "redis1")
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "No address known for" in output and "proxy1" in output, output[-3000:]
    assert redis_host.file(RULES).sha256sum == rules_before


@pytest.mark.parametrize("name", ["lb1", "lb2"])
def test_prometheus_is_closed_to_every_other_host(
    name: str, request: pytest.FixtureRequest, redis_host: Any
) -> None:
    """A monitoring host governs Prometheus's port too: a SYN from redis1 is dropped and
    counted (Prometheus listens on loopback, which the table always lets in)."""
    mon = request.getfixturevalue(name)
    before = nft_counter(mon, TABLE, "prometheus_dropped")
    assert not tcp_connects(redis_host, name, PROMETHEUS_PORT, timeout=2)
    assert nft_counter(mon, TABLE, "prometheus_dropped") > before
    assert tcp_connects(mon, "127.0.0.1", PROMETHEUS_PORT)


# Per host whose table the nftables.service test checks: (client, port, counter) of a
# connection the table drops. redis1 runs Debian 12, lb2 Debian 13.
_DROPPED = {
    "redis_host": ("lb1", "redis1", REDIS_PORT, "redis_dropped"),
    "lb2": ("redis_host", "lb2", PROMETHEUS_PORT, "prometheus_dropped"),
}


def _closed(request: pytest.FixtureRequest, name: str) -> None:
    """The table is loaded on the host and drops (and counts) a client's SYNs."""
    host = request.getfixturevalue(name)
    client, target, port, counter = _DROPPED[name]
    listed = host.run("nft list table inet %s", TABLE)
    assert listed.rc == 0, listed.stderr
    before = nft_counter(host, TABLE, counter)
    assert not tcp_connects(request.getfixturevalue(client), target, port, timeout=2)
    assert nft_counter(host, TABLE, counter) > before


@pytest.mark.parametrize("name", sorted(_DROPPED))
@pytest.mark.parametrize("action", ["start", "reload", "restart"])
def test_the_table_survives_what_nftables_service_does(
    action: str, name: str, request: pytest.FixtureRequest
) -> None:
    """Debian's nftables.service runs `flush ruleset` (its /etc/nftables.conf's first line)
    on start and reload, and on stop: each of these deleted the table while the unit stayed
    active. The rules file is included by /etc/nftables.conf and the unit follows the
    service's reloads and restarts (Debian 12's nftables.service on redis1, 13's on lb2)."""
    host = request.getfixturevalue(name)
    assert f'include "{RULES}"' in host.file("/etc/nftables.conf").content_string
    if action == "start":
        host.run("systemctl stop nftables.service")
        host.check_output("systemctl start %s", UNIT)
    host.check_output("systemctl %s nftables.service", action)
    _closed(request, name)
    assert host.service(UNIT).is_running


def test_a_run_fails_when_the_table_is_gone_and_a_real_run_loads_it(proxy1: Any) -> None:
    """A table deleted behind the unit's back (the unit still active): the dry run fails,
    naming the host; a real run loads the table again and says so."""
    proxy1.check_output("nft delete table inet %s", TABLE)
    try:
        assert proxy1.service(UNIT).is_running
        run = run_playbook("playbooks/firewall.yml", "--check")
        assert run.returncode != 0
        output = run.stdout + run.stderr
        assert f"Table inet {TABLE} on proxy1 is not loaded" in output, output[-3000:]
        assert proxy1.run("nft list table inet %s", TABLE).rc != 0
        run = run_playbook("playbooks/firewall.yml")
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        assert "changed: [proxy1]" in run.stdout.split("Load the firewall table again", 1)[1]
    finally:
        proxy1.run("systemctl reload %s", UNIT)
    assert proxy1.run("nft list table inet %s", TABLE).rc == 0
