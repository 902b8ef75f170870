"""Scrape targets for Prometheus, generated from the inventory (roles/monitoring)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

_WILDCARDS = {"", "*", "0.0.0.0", "::", "[::]"}


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _split(address: str, default_port: int) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``:port`` or a bare host into (host, port)."""
    address = str(address).strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, int(port or default_port)
    return address, default_port


def _target(
    host: str, hv: Mapping[str, Any], self_host: str, bind: str, port: int
) -> dict[str, Any]:
    """Where the monitoring host reaches ``host``'s endpoint bound to ``bind``:``port``.

    A wildcard bind is reached at the host's scrape name (monitoring_scrape_host, else
    ansible_host, else the inventory name); a loopback bind only from the host itself.
    The ``instance`` label is always ``<inventory name>:<port>``, whatever address is used.
    """
    bind = str(bind).strip()
    name = str(hv.get("monitoring_scrape_host") or hv.get("ansible_host") or host)
    if bind.strip("[]") in _WILDCARDS:
        address, reachable = name, True
    elif _is_loopback(bind):
        address, reachable = bind.strip("[]"), host == self_host
    else:
        address, reachable = bind.strip("[]"), True
    return {
        "host": host,
        "address": f"{_bracket(address)}:{port}",
        "instance": f"{host}:{port}",
        "reachable": reachable,
        "bind": f"{_bracket(bind)}:{port}",
    }


def monitoring_targets(
    hosts: Iterable[str],
    hostvars: Mapping[str, Any],
    kind: str,
    self_host: str,
    default_port: int,
) -> list[dict[str, Any]]:
    """One dict per endpoint of ``kind`` on ``hosts``: host, address, instance, reachable, bind.

    guard_proxy: guard_proxy_server_host:guard_proxy_server_port (role default 127.0.0.1).
    redis: redis_exporter_listen_address:redis_exporter_port, hosts with redis_exporter_enabled
      only (the redis role's default address is the host's own: reached by its scrape name).
    haproxy: haproxy_stats_address (role default 127.0.0.1:8404); empty means no endpoint.
    """
    out: list[dict[str, Any]] = []
    for host in hosts:
        hv = hostvars[host]
        if kind == "guard_proxy":
            bind = str(hv.get("guard_proxy_server_host", "127.0.0.1"))
            port = int(hv.get("guard_proxy_server_port", default_port))
        elif kind == "redis":
            if not _truthy(hv.get("redis_exporter_enabled", False)):
                continue
            port = int(hv.get("redis_exporter_port", default_port))
            # Unset: the redis role's default, the host's own address (reached by name).
            bind = str(hv.get("redis_exporter_listen_address", ""))
            if not bind:
                target = _target(host, hv, self_host, "0.0.0.0", port)
                target["bind"] = f"{host}'s address:{port}"
                out.append(target)
                continue
        elif kind == "haproxy":
            stats = str(hv.get("haproxy_stats_address", f"127.0.0.1:{default_port}"))
            if not stats.strip():
                continue
            bind, port = _split(stats, default_port)
        else:
            raise ValueError(f"monitoring_targets: unknown kind {kind!r}")
        out.append(_target(host, hv, self_host, bind, port))
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


class FilterModule:
    """monitoring_targets."""

    def filters(self) -> dict[str, Any]:
        return {"monitoring_targets": monitoring_targets}
