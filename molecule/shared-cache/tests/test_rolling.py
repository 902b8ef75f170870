"""The proxy tier under traffic: HAProxy (lb1 and lb2) in front of proxy1 and proxy2.

Clients run inside redis1 and reach the front door as other machines would (the one test
that bypasses it runs them on lb1: the firewall lets only lb1 reach a proxy). Runs after
the shared-cache tests (file order): the rollouts here restart every proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from gplib import (
    PROXY_UNIT,
    ROLLING_TRAFFIC_SCRIPT,
    assert_sandbox_applied,
    exposure,
    http,
    main_pid,
    name_of,
    proxy_url,
    role_release_claim,
    run_playbook,
    upstream_version,
    wait_for,
)

# HTTPS (test_frontdoor.py): redis1, where the clients run, trusts the throw-away CA.
FRONT_DOOR = "https://lb1:8443"
FRONT_DOORS = ("https://lb1:8443", "https://lb2:8443")
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
LB_TOOL = "/usr/local/sbin/haproxy-server"
STOP = "/run/gp-rolling-stop"
FIRST = "/run/gp-rolling-first"
# lb1 runs Debian 12 (HAProxy 2.6), lb2 Debian 13 (HAProxy 3.0).
LBS = ("lb1", "lb2")


def _master_pid(lb: Any) -> int:
    return main_pid(lb, "haproxy.service")


def _lb_state(lb1: Any, server: str) -> tuple[str, int]:
    """(HAProxy status, requests in flight) of one proxy, from the runtime API."""
    out = lb1.check_output("%s show guard_proxy/%s", LB_TOOL, server)
    # "unchanged: guard_proxy/proxy1 UP, 0 in flight"
    status = out.split(" ", 2)[2].rsplit(",", 1)[0]
    return status, int(out.rsplit(",", 1)[1].split()[0])


@contextmanager
def _traffic(
    client: Any, url: str | tuple[str, ...], plain: int, streams: int
) -> Iterator[dict[str, Any]]:
    """Run the rolling traffic from ``client`` to each of ``url`` (``plain`` and ``streams``
    clients per URL) for the duration of the block; the dict it yields is filled with the
    clients' counts, summed over the URLs, when the block ends."""
    urls = (url,) if isinstance(url, str) else url
    firsts = [f"{FIRST}-{i}" for i in range(len(urls))]
    client.run("rm -f %s %s", STOP, " ".join(firsts))
    procs = [
        subprocess.Popen(
            ["podman", "exec", name_of(client), "python3", "-c", ROLLING_TRAFFIC_SCRIPT,
             u, STOP, str(plain), str(streams), "600", first],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for u, first in zip(urls, firsts, strict=True)
    ]
    result: dict[str, Any] = {}
    outputs = []
    try:
        if streams:  # a stream is open through each URL before the block starts
            for first in firsts:
                assert wait_for(lambda f=first: client.file(f).exists, timeout=60)
        time.sleep(1)
        yield result
    finally:
        client.run("touch %s", STOP)
        outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        counts = json.loads(out.strip().splitlines()[-1])
        for key, value in counts.items():
            result[key] = result.get(key, [] if key == "errors" else 0) + value


def _client_ip(host: Any) -> str:
    return host.check_output("hostname -I").split()[0]


def _request_lines(proxy: Any, marker: str) -> list[dict[str, Any]]:
    out = proxy.run("journalctl --no-pager -o cat -u %s --since -5min", PROXY_UNIT).stdout
    lines = []
    for line in out.splitlines():
        if line.startswith("{") and marker in line:
            lines.append(json.loads(line))
    return lines


@pytest.mark.parametrize("name", LBS)
def test_haproxy_runs_unprivileged_in_its_sandbox(name: str, request: pytest.FixtureRequest) -> None:
    """On lb1 (Debian 12) and lb2 (Debian 13): what the kernel enforces holds on both, the
    read-only / wherever systemd sets up a mount namespace (gplib.assert_sandbox_applied)."""
    lb = request.getfixturevalue(name)
    assert lb.service("haproxy.service").is_running
    assert exposure(lb, "haproxy.service") <= 2.0
    pid = main_pid(lb, "haproxy.service")
    assert lb.process.get(pid=pid).user == "haproxy"
    assert_sandbox_applied(lb, pid)
    # The config is checked and readable by HAProxy only.
    cfg = lb.file(HAPROXY_CFG)
    assert (cfg.user, cfg.group, cfg.mode) == ("root", "haproxy", 0o640)
    check = lb.run("haproxy -c -q -f %s", HAPROXY_CFG)
    assert check.rc == 0, check.stdout + check.stderr


@pytest.mark.parametrize("name", LBS)
def test_haproxy_is_the_release_the_role_names(name: str, request: pytest.FixtureRequest) -> None:
    """The HAProxy serving is the host's Debian package, the version the role's
    tested-platforms list gives for the host's release (Debian 12: 2.6, 13: 3.0)."""
    lb = request.getfixturevalue(name)
    binary = upstream_version(lb.check_output("haproxy -v").split()[2])
    assert upstream_version(lb.package("haproxy").version) == binary
    major_minor = ".".join(binary.split(".")[:2])
    assert role_release_claim("haproxy", lb).endswith(f"HAProxy {major_minor}"), binary


def test_front_door_balances_and_passes_the_client_address(
    redis_host: Any, proxy1: Any, proxy2: Any
) -> None:
    marker = f"/api/tags?front-door-{uuid.uuid4().hex}"
    for _ in range(6):
        r = http(redis_host, "GET", FRONT_DOOR + marker)
        assert r["status"] == 200, r
    client = _client_ip(redis_host)
    seen = {name: _request_lines(p, marker.split("?")[0]) for name, p in
            (("proxy1", proxy1), ("proxy2", proxy2))}
    for name, lines in seen.items():
        assert lines, f"{name} got no request through the front door"
        # X-Forwarded-For from the trusted balancer: the client is redis1, not lb1.
        assert lines[-1]["client"] == client, lines[-1]


def test_front_door_streams_without_buffering(redis_host: Any, lb1: Any) -> None:
    with _traffic(redis_host, FRONT_DOOR, plain=0, streams=1) as result:
        # The first line reached the client while the stream is still open in HAProxy.
        in_flight = sum(_lb_state(lb1, s)[1] for s in ("proxy1", "proxy2"))
        assert in_flight >= 1
    assert result["streams_complete"] >= 1 and result["streams_broken"] == 0, result


def test_a_proxy_that_is_not_ready_leaves_the_rotation(
    redis_host: Any, proxy2: Any, lb1: Any
) -> None:
    proxy2.check_output("systemctl stop fake-ollama.service")
    try:
        assert wait_for(lambda: _lb_state(lb1, "proxy2")[0].startswith("DOWN"), timeout=30)
        for i in range(6):
            body = {"model": "llama3.2", "prompt": f"ECHO:down {i}", "stream": False}
            r = http(redis_host, "POST", FRONT_DOOR + "/api/generate", body)
            assert r["status"] == 200, r
    finally:
        proxy2.check_output("systemctl start fake-ollama.service")
    assert wait_for(lambda: _lb_state(lb1, "proxy2")[0] == "UP", timeout=30)


def test_a_restart_through_socket_activation_refuses_nothing(
    lb1: Any, proxy1: Any, record_property: Any
) -> None:
    """No HAProxy in the way: clients talk to proxy1 directly (HTTPS, its listener's
    certificate verified) while it restarts. They run on lb1, the one host the firewall lets
    reach a proxy (test_firewall.py)."""
    before = main_pid(proxy1, PROXY_UNIT)
    with _traffic(lb1, "https://proxy1:8080", plain=2, streams=1) as result:
        proxy1.check_output("systemctl restart %s", PROXY_UNIT)
        assert wait_for(lambda: http(proxy1, "GET", proxy_url(proxy1) + "/ready")["status"] == 200)
    assert main_pid(proxy1, PROXY_UNIT) not in (0, before)
    record_property("traffic", json.dumps(result))
    assert result["failed"] == 0, result
    assert result["ok"] > 0, result
    # The stream open during the restart was finished by the draining process.
    assert result["streams_broken"] == 0 and result["streams_complete"] >= 1, result


def test_rolling_update_under_traffic_fails_no_request(
    redis_host: Any, proxy1: Any, proxy2: Any, lb1: Any, lb2: Any, record_property: Any
) -> None:
    """Traffic (plain requests and streams) through both front doors while every proxy is
    drained, restarted and put back: nothing fails, no stream breaks."""
    pids = {p: main_pid(p, PROXY_UNIT) for p in (proxy1, proxy2)}
    with _traffic(redis_host, FRONT_DOORS, plain=2, streams=1) as result:
        run = run_playbook(
            "playbooks/rolling_update.yml", "-e", "guard_proxy_server_log_level=debug"
        )
    record_property("traffic", json.dumps(result))
    assert result["failed"] == 0, result
    assert result["ok"] > 0, result
    assert result["streams_broken"] == 0 and result["streams_complete"] >= 2, result
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    # Each proxy stops getting new requests in BOTH load balancers before the play
    # waits for its requests in flight to end in either.
    handlers = run.stdout.split("PLAY RECAP", 1)[0]
    batches = handlers.split(
        "RUNNING HANDLER [guard_proxy : Stop new requests to guard-proxy in every load balancer]"
    )[1:]
    assert len(batches) == 2, run.stdout[-3000:]
    for batch in batches:
        stop_new, wait = batch.split(
            "RUNNING HANDLER [guard_proxy : Drain guard-proxy in the load balancers]", 1
        )
        name = "proxy1" if "[proxy1 -> lb1]" in stop_new else "proxy2"
        for lb in ("lb1", "lb2"):
            assert f"changed: [{name} -> {lb}]" in stop_new, stop_new
            assert f"changed: [{name} -> {lb}]" in wait.split("RUNNING HANDLER", 1)[0], wait
    for proxy, pid in pids.items():
        name = name_of(proxy)
        assert main_pid(proxy, PROXY_UNIT) not in (0, pid), f"{name} was not restarted"
        for lb in (lb1, lb2):
            assert _lb_state(lb, name)[0] == "UP"


def test_a_broken_proxy_stops_the_rollout_and_the_others_serve(
    redis_host: Any, proxy1: Any, proxy2: Any, lb1: Any, record_property: Any
) -> None:
    """proxy1 (first in the rollout) gets an upstream that does not answer: the play
    fails there, proxy2 is not touched, and the front door keeps serving through it."""
    proxy2_pid = main_pid(proxy2, PROXY_UNIT)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"guard_proxy_ollama_url": "{{ 'http://127.0.0.1:9' if inventory_hostname == 'proxy1' "
                   "else 'http://127.0.0.1:11434' }}", "guard_proxy_health_timeout": 10}, f)
    try:
        with _traffic(redis_host, FRONT_DOOR, plain=2, streams=1) as result:
            run = run_playbook("playbooks/rolling_update.yml", "-e", f"@{f.name}")
    finally:
        os.unlink(f.name)
    record_property("traffic", json.dumps(result))
    assert result["failed"] == 0 and result["streams_broken"] == 0, result
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "live but not ready" in output and "http://127.0.0.1:9 not reachable" in output, output[-3000:]
    assert main_pid(proxy2, PROXY_UNIT) == proxy2_pid, "the rollout went past the broken host"
    assert _lb_state(lb1, "proxy1")[0].startswith("MAINT")

    # The next good rollout heals proxy1 and puts it back.
    run = run_playbook("playbooks/rolling_update.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert _lb_state(lb1, "proxy1")[0] == "UP"


@pytest.mark.parametrize("name", LBS)
def test_a_server_in_maint_stays_there_across_a_reload(name: str, request: pytest.FixtureRequest) -> None:
    """server-state-file: a proxy an operator (or a failed rollout) put in MAINT is not
    put back into rotation by a reload of HAProxy (2.6 on lb1, 3.0 on lb2)."""
    lb = request.getfixturevalue(name)
    master = _master_pid(lb)
    lb.check_output("%s drain guard_proxy/proxy2 --timeout 30", LB_TOOL)
    try:
        assert _lb_state(lb, "proxy2")[0].startswith("MAINT")
        workers = lb.check_output("pgrep -P %s", str(master)).split()
        lb.check_output("systemctl reload haproxy.service")
        # The new worker serves (the old one may linger while its connections end).
        assert wait_for(
            lambda: set(lb.check_output("pgrep -P %s", str(master)).split()) - set(workers),
            timeout=30,
        )
        assert _master_pid(lb) == master
        assert _lb_state(lb, "proxy2")[0].startswith("MAINT")
        assert lb.file("/run/haproxy/server-state").contains("guard_proxy")
    finally:
        lb.check_output("%s ready guard_proxy/proxy2 --timeout 30", LB_TOOL)
    assert _lb_state(lb, "proxy2")[0] == "UP"


def test_only_a_connection_that_never_opened_is_retried_for_a_post(lb1: Any, lb2: Any) -> None:
    """retry-on with option redispatch would send a POST (a generation) that got no answer
    to another proxy; only GET and HEAD are retried at layer 7."""
    for lb in (lb1, lb2):
        cfg = lb.check_output("cat %s", HAPROXY_CFG)
        assert "http-request disable-l7-retry unless METH_GET" in cfg
        assert "load-server-state-from-file global" in cfg
        hard_stop = next(line.split()[1] for line in cfg.splitlines() if "hard-stop-after" in line
                         and not line.strip().startswith("#"))
        assert hard_stop.endswith("m") and int(hard_stop[:-1]) >= 60, hard_stop


def test_a_config_and_unit_change_reloads_one_lb_at_a_time_and_cuts_no_stream(
    redis_host: Any, lb1: Any, lb2: Any, record_property: Any
) -> None:
    """A changed haproxy.cfg and sandbox drop-in (maxconn is in both) under traffic through
    both front doors: each load balancer reloads in a batch of its own (serial), none
    restarts, nothing fails."""
    masters = {lb: _master_pid(lb) for lb in (lb1, lb2)}
    dropin = "/etc/systemd/system/haproxy.service.d/sandbox.conf"
    before = {lb: lb.file(dropin).sha256sum for lb in (lb1, lb2)}
    try:
        with _traffic(redis_host, FRONT_DOORS, plain=2, streams=1) as result:
            run = run_playbook("playbooks/haproxy.yml", "-e", "haproxy_maxconn=4000")
        record_property("traffic", json.dumps(result))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        for lb in (lb1, lb2):
            assert lb.file(dropin).sha256sum != before[lb]
            assert _master_pid(lb) == masters[lb], f"{name_of(lb)} restarted"
        # serial: one play batch per load balancer.
        assert run.stdout.count("TASK [haproxy : Render haproxy.cfg]") == 2, run.stdout[-3000:]
        assert "Restart haproxy" not in run.stdout.split("PLAY RECAP")[0].replace(
            "Restart haproxy onto its sandbox (first install)", ""
        )
        assert result["failed"] == 0 and result["ok"] > 0, result
        assert result["streams_broken"] == 0 and result["streams_complete"] >= 2, result
    finally:
        restore = run_playbook("playbooks/haproxy.yml")
    assert restore.returncode == 0, restore.stdout[-3000:]
