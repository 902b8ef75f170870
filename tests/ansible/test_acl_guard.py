"""The redis role's ACL guard (roles/redis/tasks/assert.yml) is an allow-list:
an application user gets only what a verdict cache needs, and every
administrative rule is refused with a message that names it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ASSERT_BASE, ROOT, Servers, free_port, redis_cli, run_assert_cases, wait_until

DEFAULTS = yaml.safe_load((ROOT / "roles/redis/defaults/main.yml").read_text())
ROLE_VARS = yaml.safe_load((ROOT / "roles/redis/vars/main.yml").read_text())

# rule -> case name; each is added to the default rules and must be refused.
REFUSED = {
    "+flushall": "flushall",
    "+config": "config",
    "+acl": "acl",
    "+@admin": "admin",
    "+@dangerous": "dangerous",
    "+@all": "all",
    "allcommands": "allcommands",
    "+FLUSHDB": "flushdb_upper",
    "+config|set": "config_set",
    "+debug": "debug",
    "+shutdown": "shutdown",
    "+module": "module",
    "+bgsave": "bgsave",
    "+replicaof": "replicaof",
    "+monitor": "monitor",
    "+client|kill": "client_kill",
    "+client": "client",
    "+keys": "keys",
    "+@keyspace": "keyspace",
    "+@write": "write",
    "nopass": "nopass",
    "~*": "all_keys",
}


def with_rules(rules: list[str]) -> dict[str, Any]:
    variables = copy.deepcopy(ASSERT_BASE)
    variables["redis_acl_users"][0]["commands"] = rules
    return variables


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    default_rules = DEFAULTS["redis_acl_cache_client_commands"]
    cases: dict[str, dict[str, Any]] = {
        "defaults": copy.deepcopy(ASSERT_BASE),
        "explicit_defaults": with_rules(default_rules),
        "with_key_limits": with_rules(default_rules + DEFAULTS["redis_acl_key_limits_commands"]),
        "removals_and_string": with_rules(
            ["-@all", "+@string", "+GET", "+scan", "-flushall", "-@dangerous", "+info"]
        ),
        "not_starting_with_minus_all": with_rules(["+get", "-@all"]),
    }
    for rule, name in REFUSED.items():
        cases[name] = with_rules([*default_rules, rule])
    return run_assert_cases(tmp_path_factory.mktemp("acl"), cases)


@pytest.mark.parametrize(
    "case", ["defaults", "explicit_defaults", "with_key_limits", "removals_and_string"]
)
def test_the_rules_a_verdict_cache_needs_pass(
    results: tuple[dict[str, Any], str], case: str
) -> None:
    result = results[0][case]
    assert result["ok"], result


@pytest.mark.parametrize("rule", list(REFUSED))
def test_an_administrative_rule_is_refused_by_name(
    results: tuple[dict[str, Any], str], rule: str
) -> None:
    result = results[0][REFUSED[rule]]
    assert not result["ok"], f"{rule} was accepted"
    assert result["task"] == "Grant ACL users only what a verdict cache needs"
    message = " ".join(result["msgs"])
    assert f"ACL user 'guard-proxy' may not be granted \"{rule}\"" in message, message
    assert "never an administrative command or category" in message


def test_the_rules_must_start_by_removing_everything(results: tuple[dict[str, Any], str]) -> None:
    result = results[0]["not_starting_with_minus_all"]
    assert not result["ok"]
    assert "commands must start with '-@all'" in " ".join(result["msgs"])


def test_no_allowed_grant_is_administrative_in_redis(servers: Servers, tmp_path: Path) -> None:
    """Asks a real Redis which commands @admin and @dangerous hold: none of the
    grants the guard allows is among them (INFO, read-only, excepted on purpose),
    and neither is any command of the one allowed category, @string."""
    port = free_port()
    servers.start(
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(tmp_path), log_name="redis.log",
    )  # fmt: skip
    wait_until(lambda: redis_cli(port, "PING").stdout.strip() == "PONG", what="redis")

    def category(name: str) -> set[str]:
        reply = redis_cli(port, "ACL", "CAT", name)
        assert reply.returncode == 0, reply.stderr
        return set(reply.stdout.split())

    privileged = category("admin") | category("dangerous")
    assert {"flushall", "config|set", "acl|setuser", "keys"} <= privileged  # sanity
    grants = ROLE_VARS["_redis_acl_allowed_grants"]
    categories = [g[1:] for g in grants if g.startswith("@")]
    assert categories == ["string"]
    commands = {g for g in grants if not g.startswith("@")}
    commands |= category("string")
    assert commands & privileged == {"info"}
    # Every command the default rules grant is allowed by the guard.
    granted = {r[1:].lower() for r in DEFAULTS["redis_acl_cache_client_commands"] if r[0] == "+"}
    assert granted <= set(grants)
