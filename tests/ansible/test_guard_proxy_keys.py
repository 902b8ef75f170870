"""The guard_proxy role's client keys: its checks of guard_proxy_keys (assert.yml) and
the keys file it renders (hashes only), read back by the app's own validator."""

from __future__ import annotations

import copy
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TOOLS, run_assert_cases

APP_CLI = ROOT / ".venv" / "bin" / "guard-proxy"
SECRET_A = "Zq7Key-" + "a" * 40
SECRET_B = "Zq7Key-" + "b" * 40
GOOD: dict[str, Any] = {
    "guard_proxy_allow_untested_platform": True,
    "guard_proxy_cache_backend": "memory",
    "guard_proxy_keys_enabled": True,
    "guard_proxy_keys": [
        {"name": "team-a", "secret": SECRET_A, "limits": {"requests_per_minute": 60}},
        {"name": "team-b", "secret": SECRET_B},
    ],
}
TASK = "Refuse client keys the app would reject, short keys and repeated names"


def case(**change: Any) -> dict[str, Any]:
    variables = copy.deepcopy(GOOD)
    for index, fields in change.items():
        variables["guard_proxy_keys"][int(index.removeprefix("key"))].update(fields)
    return variables


CASES: dict[str, dict[str, Any]] = {
    "good": copy.deepcopy(GOOD),
    "short_secret": case(key0={"secret": "Zq7Key-short"}),
    "zero_limit": case(key0={"limits": {"tokens_per_day": 0}}),
    "unknown_limit": case(key0={"limits": {"requests_per_hour": 5}}),
    "text_limit": case(key0={"limits": {"tokens_per_minute": "lots"}}),
    "bad_name": case(key0={"name": "Team A"}),
    "same_name": case(key1={"name": "team-a"}),
    "same_secret": case(key1={"secret": SECRET_A}),
}


def _render_keys(name: str, out: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": "Render keys.yml",
            "ansible.builtin.template": {
                "src": str(ROOT / "roles/guard_proxy/templates/keys.yml.j2"),
                "dest": str(out / f"{name}.keys.yml"),
                "mode": "0600",
            },
            "no_log": True,
        }
    ]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    tmp = tmp_path_factory.mktemp("keys")
    found, output = run_assert_cases(tmp, CASES, role="guard_proxy", then=_render_keys)
    return found, output, tmp / "results"


def test_good_keys_pass_and_render_hashes_the_app_accepts(
    results: tuple[dict[str, Any], str, Path],
) -> None:
    found, _, out = results
    assert found["good"]["ok"], found["good"]
    text = (out / "good.keys.yml").read_text()
    assert SECRET_A not in text and SECRET_B not in text
    assert hashlib.sha256(SECRET_A.encode()).hexdigest() in text
    check = subprocess.run(
        [str(APP_CLI), "keys", "--check", str(out / "good.keys.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "2 keys (team-a, team-b)" in check.stdout


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("short_secret", "the secret at least 32"),
        ("zero_limit", "limits positive integers"),
        ("unknown_limit", "limits positive integers"),
        ("text_limit", "limits positive integers"),
        ("bad_name", "the name must be"),
        ("same_name", "and unique"),
    ],
)
def test_bad_keys_are_refused_by_index_and_name(
    results: tuple[dict[str, Any], str, Path], name: str, words: str
) -> None:
    result = results[0][name]
    assert not result["ok"], f"{name} was accepted"
    assert result["task"] == TASK
    message = " ".join(result["msgs"])
    assert "guard_proxy_keys[" in message and words in message, message


def test_one_secret_for_two_keys_is_refused(results: tuple[dict[str, Any], str, Path]) -> None:
    result = results[0]["same_secret"]
    assert not result["ok"]
    assert result["task"] == "Refuse two client keys with the same secret"


def test_no_secret_in_ansible_output(results: tuple[dict[str, Any], str, Path]) -> None:
    _, output, _ = results
    assert "Zq7Key-" not in output
    assert TOOLS.exists()
