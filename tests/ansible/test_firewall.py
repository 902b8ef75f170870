"""The firewall role without hosts: the addresses its sets are built from
(filter_plugins/firewall_sources.py), and the rules it renders for an inventory,
checked by nft itself (`nft -c`, in a throw-away network namespace) when it can run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TOOLS, run_playbook

FILTER = ROOT / "roles" / "firewall" / "filter_plugins" / "firewall_sources.py"
TEMPLATE = ROOT / "roles" / "firewall" / "templates" / "firewall.nft.j2"


def _filter() -> Any:
    spec = importlib.util.spec_from_file_location("firewall_sources", FILTER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.firewall_sources


def _facts(v4: str = "", v6: str = "") -> dict[str, Any]:
    return {
        "ansible_facts": {
            "default_ipv4": {"address": v4} if v4 else {},
            "default_ipv6": {"address": v6} if v6 else {},
        }
    }


def test_sources_come_from_facts_or_the_hosts_own_list() -> None:
    hostvars = {
        "a": _facts("10.0.0.5", "fd00::5"),
        "b": {"firewall_host_addresses": ["192.0.2.7"], **_facts("10.0.0.6")},
        "c": _facts(),
        "d": {},
    }
    got = _filter()(["a", "b", "c", "d", "a"], hostvars)
    assert got == {"ipv4": ["10.0.0.5", "192.0.2.7"], "ipv6": ["fd00::5"], "missing": ["c", "d"]}


def test_every_address_of_a_peer_is_a_source() -> None:
    """A peer with several interfaces connects from any of them: ansible_host (an IP
    address), every address its facts list; loopback and link-local never."""
    hostvars = {
        "a": {
            "ansible_host": "203.0.113.9",
            "ansible_facts": {
                "default_ipv4": {"address": "10.0.0.5"},
                "all_ipv4_addresses": ["10.0.0.5", "172.16.3.5", "127.0.0.1"],
                "all_ipv6_addresses": ["fe80::1", "fd00::5", "::1"],
            },
        },
        # A name in ansible_host is no address: its facts are.
        "b": {"ansible_host": "b.example", "ansible_facts": {"all_ipv4_addresses": ["10.0.0.6"]}},
        # Only ansible_host known.
        "c": {"ansible_host": "192.0.2.3"},
    }
    got = _filter()(["a", "b", "c"], hostvars)
    assert got == {
        "ipv4": ["10.0.0.5", "10.0.0.6", "172.16.3.5", "192.0.2.3", "203.0.113.9"],
        "ipv6": ["fd00::5"],
        "missing": [],
    }


def test_overlaps_merge_and_host_bits_are_dropped() -> None:
    """An nftables interval set refuses overlapping elements."""
    got = _filter()(["a"], {"a": _facts("10.1.2.3")}, ["10.1.2.3/8", "::/0", "2001:db8::1"])
    assert got == {"ipv4": ["10.0.0.0/8"], "ipv6": ["::/0"], "missing": []}


def test_a_bad_network_names_itself() -> None:
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match=r"'10\.0\.0\.300'"):
        _filter()([], {}, ["10.0.0.300"])


# --- the rules rendered for an inventory --------------------------------------

ADDRESSES = {
    "redis1": "10.0.0.1",
    "redis2": "10.0.0.2",
    "proxy1": "10.0.0.11",
    "lb1": "10.0.0.21",
    "mon1": "10.0.0.31",
}


def _inventory(groups: dict[str, list[str]], host_vars: dict[str, Any]) -> dict[str, Any]:
    hosts = {h for members in groups.values() for h in members}
    children = {g: {"hosts": {h: None for h in members}} for g, members in groups.items()}
    per_host = {
        h: {"firewall_host_addresses": [ADDRESSES[h], f"fd00::{ADDRESSES[h].rsplit('.', 1)[1]}"]}
        for h in hosts
    }
    for h, hv in host_vars.items():
        per_host.setdefault(h, {}).update(hv)
    return {
        "all": {
            "hosts": per_host,
            "children": children,
            "vars": {"ansible_connection": "local", "firewall_allow_untested_platform": True},
        }
    }


def _render(
    tmp: Path,
    groups: dict[str, list[str]],
    host_vars: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run the role's checks and render its template for each host of the stack."""
    (tmp / "inventory.yml").write_text(json.dumps(_inventory(groups, host_vars or {})))
    out = tmp / "out"
    out.mkdir()
    plays = [
        {
            "name": "Render the firewall rules",
            "hosts": "redis:guard_proxy:loadbalancer:monitoring",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": str(TOOLS / "bin" / "python")},
            "tasks": [
                {
                    "name": "Check",
                    "ansible.builtin.include_role": {
                        "name": "firewall",
                        "tasks_from": "assert.yml",
                        "public": True,
                    },
                },
                {
                    "name": "Render",
                    "delegate_to": "localhost",
                    "ansible.builtin.template": {
                        "src": str(TEMPLATE),
                        "dest": f"{out}/{{{{ inventory_hostname }}}}.nft",
                        "mode": "0600",
                    },
                },
            ],
        }
    ]
    run = run_playbook(tmp, plays, extra_vars=extra or None, inventory=tmp / "inventory.yml")
    return run, {p.stem: p.read_text() for p in out.glob("*.nft")}


def _nft_accepts(text: str, tmp: Path) -> None:
    """`nft -c` on the rendered file, in a network namespace of its own; skipped without
    nft or the privilege to make one."""
    if not shutil.which("nft") or not shutil.which("unshare"):
        return
    path = tmp / "check.nft"
    path.write_text(text)
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        return
    check = subprocess.run(
        ["unshare", "-n", "nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr + text


def _rules(text: str, port: int) -> list[str]:
    return [
        line.strip() for line in text.splitlines() if line.strip().startswith(f"tcp dport {port} ")
    ]


def _elements(text: str, set_name: str) -> str:
    block = text.split(f"set {set_name} {{", 1)[1].split("}", 1)[
        0
    ]  # up to the elements' closing brace
    return block.split("elements = {", 1)[1].strip() if "elements" in block else ""


STACK = {
    "redis": ["redis1"],
    "guard_proxy": ["proxy1"],
    "loadbalancer": ["lb1"],
    "monitoring": ["mon1"],
}


def test_a_stack_with_a_load_balancer(tmp_path: Path) -> None:
    run, files = _render(tmp_path, STACK, {"redis1": {"redis_exporter_enabled": True}})
    assert run.returncode == 0, run.stdout[-3000:]
    redis, proxy = files["redis1"], files["proxy1"]
    for text in (redis, proxy):
        _nft_accepts(text, tmp_path)
        assert 'iif "lo" accept' in text and "policy accept" in text
    assert _rules(redis, 6379)[-1] == 'tcp dport 6379 counter name "redis_dropped" drop'
    assert _elements(redis, "redis_ipv4") == "10.0.0.1, 10.0.0.11"
    assert _elements(redis, "redis_ipv6") == "fd00::1, fd00::11"
    # The exporter: Prometheus only.
    assert _elements(redis, "redis_exporter_ipv4") == "10.0.0.31"
    assert not _rules(redis, 26379) and not _rules(redis, 8080)
    # The proxy: the balancer and Prometheus, nobody else.
    assert _elements(proxy, "guard_proxy_ipv4") == "10.0.0.21, 10.0.0.31"
    assert not _rules(proxy, 6379)
    # The load balancer: the front door open to every client, HAProxy's statistics to
    # Prometheus only; the monitoring host: Prometheus's port to loopback only.
    lb, mon = files["lb1"], files["mon1"]
    for text in (lb, mon):
        _nft_accepts(text, tmp_path)
    assert _rules(lb, 8080)[-1] == 'tcp dport 8080 counter name "frontdoor_dropped" drop'
    assert _elements(lb, "frontdoor_ipv4") == "0.0.0.0/0"
    assert _elements(lb, "frontdoor_ipv6") == "::/0"
    assert _elements(lb, "haproxy_stats_ipv4") == "10.0.0.31"
    assert _rules(mon, 9090)[-1] == 'tcp dport 9090 counter name "prometheus_dropped" drop'
    assert _elements(mon, "prometheus_ipv4") == "" and _elements(mon, "prometheus_ipv6") == ""
    assert not _rules(mon, 8080) and not _rules(lb, 9090)


def test_front_door_ports_and_narrowed_clients(tmp_path: Path) -> None:
    groups = {"redis": ["redis1"], "guard_proxy": ["proxy1"], "loadbalancer": ["lb1"]}
    run, files = _render(
        tmp_path,
        groups,
        extra={
            "firewall_frontdoor_ports": [80, 443],
            "firewall_frontdoor_client_networks": ["198.51.100.0/24"],
            "haproxy_stats_address": "",
        },
    )
    assert run.returncode == 0, run.stdout[-3000:]
    lb = files["lb1"]
    _nft_accepts(lb, tmp_path)
    assert _rules(lb, 80) == [] and len([r for r in lb.splitlines() if "{ 80, 443 }" in r]) == 3
    assert _elements(lb, "frontdoor_ipv4") == "198.51.100.0/24"
    assert "haproxy_stats" not in lb


def test_sentinel_and_extra_networks(tmp_path: Path) -> None:
    groups = {"redis": ["redis1", "redis2"], "guard_proxy": ["proxy1"], "loadbalancer": ["lb1"]}
    run, files = _render(
        tmp_path,
        groups,
        extra={
            "redis_sentinel_enabled": True,
            "redis_sentinel_port": 26380,
            "firewall_redis_client_networks": ["192.168.7.0/24"],
            "firewall_proxy_client_networks": ["198.51.100.0/24", "2001:db8::/32"],
        },
    )
    assert run.returncode == 0, run.stdout[-3000:]
    redis = files["redis2"]
    _nft_accepts(redis, tmp_path)
    assert len(_rules(redis, 26380)) == 3
    assert _elements(redis, "sentinel_ipv4") == "10.0.0.1, 10.0.0.2, 10.0.0.11, 192.168.7.0/24"
    assert _elements(files["proxy1"], "guard_proxy_ipv6") == "2001:db8::/32, fd00::21"


def test_without_a_load_balancer_the_proxy_lets_in_what_it_allows(tmp_path: Path) -> None:
    groups = {"redis": ["redis1"], "guard_proxy": ["proxy1"]}
    run, files = _render(tmp_path, groups, extra={"guard_proxy_access_allow": ["10.0.0.0/8"]})
    assert run.returncode == 0, run.stdout[-3000:]
    _nft_accepts(files["proxy1"], tmp_path)
    assert _elements(files["proxy1"], "guard_proxy_ipv4") == "10.0.0.0/8"
    assert _elements(files["proxy1"], "guard_proxy_ipv6") == ""


def test_a_host_without_an_address_stops_the_run(tmp_path: Path) -> None:
    run, files = _render(tmp_path, STACK, {"proxy1": {"firewall_host_addresses": []}})
    assert run.returncode != 0
    assert "No address known for proxy1" in run.stdout, run.stdout[-3000:]
    assert "redis1" not in files


# --- the rules in a real kernel -------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def two_namespaces() -> Any:
    """Two network namespaces joined by a veth pair: fwt-srv 192.0.2.1 and fwt-cli 192.0.2.2
    (TEST-NET-1, no route anywhere). Skipped without root, ip or nft."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        pytest.skip("needs root, ip and nft")
    names = (f"fwt-srv-{os.getpid()}", f"fwt-cli-{os.getpid()}")
    try:
        for name in names:
            _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip(
            "-n",
            names[0],
            "link",
            "add",
            "fwt0",
            "type",
            "veth",
            "peer",
            "name",
            "fwt1",
            "netns",
            names[1],
        )
        for name, dev, addr in (
            (names[0], "fwt0", "192.0.2.1/24"),
            (names[1], "fwt1", "192.0.2.2/24"),
        ):
            _ip("-n", name, "addr", "add", addr, "dev", dev)
            _ip("-n", name, "link", "set", dev, "up")
    except subprocess.CalledProcessError as exc:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        pytest.skip(f"cannot make network namespaces here: {exc.stderr!r}")
    yield names
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


_LISTEN = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    while True:
        s.accept()[0].close()
for port in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(port),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait(60)
"""

_CONNECT = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5).close()
except OSError:
    sys.exit(1)
"""


def _connects(ns: str, host: str, port: int) -> bool:
    argv = ["ip", "netns", "exec", ns, "python3", "-c", _CONNECT, host, str(port)]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0


def _packets(ns: str, counter: str) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-j", "list", "counter", "inet", "guard_stack", counter],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(int(i["counter"]["packets"]) for i in json.loads(out)["nftables"] if "counter" in i)


def test_the_rules_drop_and_count_in_a_kernel(
    tmp_path: Path, two_namespaces: tuple[str, str]
) -> None:
    """redis1 (192.0.2.1) lets its proxy (192.0.2.9) reach Redis and lb1 (192.0.2.2, the
    monitoring host) reach the exporter: from lb1, 6379 is dropped and counted, 9121 is
    open, and a port the table does not govern (SSH's stand-in) is untouched."""
    srv, cli = two_namespaces
    groups = {
        "redis": ["redis1"],
        "guard_proxy": ["proxy1"],
        "loadbalancer": ["lb1"],
        "monitoring": ["lb1"],
    }
    host_vars = {
        "redis1": {"redis_exporter_enabled": True, "firewall_host_addresses": ["192.0.2.1"]},
        "proxy1": {"firewall_host_addresses": ["192.0.2.9"]},
        "lb1": {"firewall_host_addresses": ["192.0.2.2"]},
    }
    run, files = _render(tmp_path, groups, host_vars)
    assert run.returncode == 0, run.stdout[-3000:]
    rules = tmp_path / "redis1.nft"
    rules.write_text(files["redis1"])
    listener = subprocess.Popen(
        ["ip", "netns", "exec", srv, "python3", "-c", _LISTEN, "6379", "9121", "2222"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout and listener.stdout.readline().strip() == "ready"
        assert _connects(cli, "192.0.2.1", 6379)  # no table yet
        subprocess.run(["ip", "netns", "exec", srv, "nft", "-f", str(rules)], check=True)
        assert not _connects(cli, "192.0.2.1", 6379)
        assert _packets(srv, "redis_dropped") > 0
        assert _connects(cli, "192.0.2.1", 9121)
        assert _packets(srv, "redis_exporter_accepted") > 0
        assert _connects(cli, "192.0.2.1", 2222)
        assert _connects(srv, "127.0.0.1", 6379)  # loopback
        # Loaded again: one transaction, the same table, counters from zero.
        subprocess.run(["ip", "netns", "exec", srv, "nft", "-f", str(rules)], check=True)
        assert _packets(srv, "redis_dropped") == 0
        assert not _connects(cli, "192.0.2.1", 6379)
    finally:
        listener.kill()
        listener.wait()
