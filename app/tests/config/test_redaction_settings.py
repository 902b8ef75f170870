"""``actions`` and ``restore`` of ``pii`` and ``secrets``: defaults, and bad settings that stop
start-up naming the key (the loader, and ``guard-proxy serve`` itself)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from guard_proxy.config import load_settings
from guard_proxy.exceptions import ConfigError


def _load(tmp_path: Path, guard: dict[str, Any]) -> dict[str, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"guard": guard}))
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    return dict(info.value.problems)


def test_defaults_redact_personal_data_and_block_credentials() -> None:
    guard = load_settings(environ={}).guard
    assert guard.input.pii.action("email") == "redact"
    assert guard.input.pii.action("credit_card") == "redact"
    assert guard.input.secrets.action("private_key") == "block"
    assert guard.input.secrets.action("aws_secret_key") == "block"
    assert guard.input.secrets.action("password_assignment") == "redact"
    assert guard.input.pii.restore and not guard.input.secrets.restore
    assert not guard.output.pii.restore


def test_an_action_overrides_only_its_kind(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"guard": {"input": {"pii": {"actions": {"iban": "block"}}}}}))
    pii = load_settings(path, environ={}).guard.input.pii
    assert pii.action("iban") == "block" and pii.action("email") == "redact"


@pytest.mark.parametrize(
    ("guard", "key", "words"),
    [
        (
            {"input": {"pii": {"actions": {"email": "mask"}}}},
            "guard.input.pii.actions.email",
            "unknown action 'mask'",
        ),
        (
            {"output": {"secrets": {"actions": {"jwt": "drop"}}}},
            "guard.output.secrets.actions.jwt",
            "expected one of: block, redact",
        ),
        (
            {"input": {"pii": {"actions": {"emial": "redact"}}}},
            "guard.input.pii.actions.emial",
            "did you mean 'email'",
        ),
        (
            {"input": {"secrets": {"actions": {"email": "redact"}}}},
            "guard.input.secrets.actions.email",
            "unknown kind",
        ),
        (
            {"output": {"pii": {"restore": True}}},
            "guard.output.pii.restore",
            "cannot be set on guard.output",
        ),
        (
            {"input": {"secrets": {"restore": True, "actions": {"private_key": "redact"}}}},
            "guard.input.secrets.restore",
            "private_key cannot be restored",
        ),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, guard: dict[str, Any], key: str, words: str
) -> None:
    problems = _load(tmp_path, guard)
    assert key in problems, problems
    assert words in problems[key]


def test_serve_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"guard": {"input": {"pii": {"actions": {"email": "mask"}}}}}))
    done = subprocess.run(
        [sys.executable, "-m", "guard_proxy", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "guard.input.pii.actions.email" in done.stderr + done.stdout
