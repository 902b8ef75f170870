"""Every role refuses a distribution release it is not tested on, first thing, with
a message that names the releases it is tested on (Debian 12 and 13) and what was
installed there; the tested releases and the override pass that check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_assert_cases

PLATFORM_TASK = "Refuse distribution releases the role is not tested on"
ROLES = {
    "redis": ("Redis 7.0", "Redis 8.0"),
    "guard_proxy": ("Python 3.11", "Python 3.13"),
    "haproxy": ("HAProxy 2.6", "HAProxy 3.0"),
    "monitoring": ("Prometheus 2.42", "Prometheus 2.53"),
    "firewall": ("nftables 1.0.6", "nftables 1.1.3"),
}


def _facts(major: str, distribution: str = "Debian") -> dict[str, Any]:
    return {
        "ansible_facts": {"distribution": distribution, "distribution_major_version": major}
    }


@pytest.mark.parametrize("role", sorted(ROLES))
def test_an_untested_release_stops_with_the_tested_ones_named(tmp_path: Path, role: str) -> None:
    cases = {
        "debian11": _facts("11"),
        "ubuntu24": _facts("24", "Ubuntu"),
        "debian12": _facts("12"),
        "debian13": _facts("13"),
        "debian14_allowed": {**_facts("14"), f"{role}_allow_untested_platform": True},
    }
    results, output = run_assert_cases(tmp_path, cases, role=role)
    on12, on13 = ROLES[role]
    for refused, release in (("debian11", "Debian-11"), ("ubuntu24", "Ubuntu-24")):
        got = results[refused]
        assert not got["ok"], output
        assert got["task"] == PLATFORM_TASK
        msg = " ".join(got["msgs"])
        assert f"localhost runs {release}; the {role} role is tested on" in msg
        assert f"Debian-12 (bookworm, {on12}), Debian-13 (trixie, {on13}) only" in msg
        assert f"{role}_allow_untested_platform: true" in msg
    # Past the platform check (a later check may still stop on this bare play's variables).
    for passed in ("debian12", "debian13", "debian14_allowed"):
        assert results[passed]["ok"] or results[passed]["task"] != PLATFORM_TASK, (
            passed,
            results[passed],
        )
