"""Source addresses for the firewall's sets, from the inventory (roles/firewall)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _is_address(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value).strip())
    except ValueError:
        return False
    return True


def _host_addresses(hv: Mapping[str, Any]) -> list[str]:
    """The addresses a host may connect from: firewall_host_addresses when it sets it;
    else every address it has (its ansible_host when that is an IP address, its default
    IPv4 and IPv6 addresses and all of ansible_all_ipv4_addresses/_ipv6_addresses from
    its facts), loopback and IPv6 link-local left out: a peer with several interfaces
    may reach this host from any of them, not only from its default route's."""
    explicit = hv.get("firewall_host_addresses")
    if explicit:
        if isinstance(explicit, str):
            explicit = [explicit]
        return [str(a) for a in explicit]
    facts = hv.get("ansible_facts") or {}
    candidates: list[object] = []
    if _is_address(hv.get("ansible_host", "")):
        candidates.append(hv["ansible_host"])
    for key in ("default_ipv4", "default_ipv6"):
        candidates.append((facts.get(key) or {}).get("address"))
    for key in ("all_ipv4_addresses", "all_ipv6_addresses"):
        candidates.extend(facts.get(key) or [])
    found: list[str] = []
    for candidate in candidates:
        if not candidate or not _is_address(candidate):
            continue
        address = ipaddress.ip_address(str(candidate).strip())
        if address.is_loopback or address.is_link_local:
            continue
        if str(address) not in found:
            found.append(str(address))
    return found


def _network(value: str, where: str) -> Network:
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError as exc:
        raise AnsibleFilterError(
            f"firewall_sources: {value!r} ({where}) is no address or network: {exc}"
        ) from exc


def _nft(net: Network) -> str:
    full = 32 if net.version == 4 else 128
    return str(net.network_address) if net.prefixlen == full else str(net)


def firewall_sources(
    hosts: Iterable[str], hostvars: Mapping[str, Any], networks: Iterable[str] = ()
) -> dict[str, list[str]]:
    """Addresses of ``hosts`` (see _host_addresses) plus ``networks`` (CIDR), as
    {"ipv4": [...], "ipv6": [...], "missing": [hosts without any address]}.

    Overlapping entries are merged (an nftables interval set refuses overlaps) and
    both lists are sorted, so the same inventory always renders the same rules.
    """
    found: list[Network] = []
    missing: list[str] = []
    for host in dict.fromkeys(hosts):
        addresses = _host_addresses(hostvars[host])
        if not addresses:
            missing.append(host)
        found.extend(_network(a, f"address of {host}") for a in addresses)
    found.extend(_network(n, "networks") for n in networks or ())
    out: dict[str, list[str]] = {"missing": missing}
    for version, key in ((4, "ipv4"), (6, "ipv6")):
        nets = [n for n in found if n.version == version]
        out[key] = [_nft(n) for n in ipaddress.collapse_addresses(nets)]  # type: ignore[arg-type]
    return out


class FilterModule:
    """firewall_sources."""

    def filters(self) -> dict[str, Any]:
        return {"firewall_sources": firewall_sources}
