"""The redis role's defaults that follow ``redis_server_flavour`` (paths, units, packages)
template at the role's first step, its argument validation, before any task has loaded the
flavour's names: a play without Sentinel (nothing ran the flavour task earlier) once failed
there with ``'_redis_conf_dir' is undefined``. Run without a password, the validation must get
as far as the missing required argument, for each flavour."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_playbook


@pytest.mark.parametrize("flavour", ["redis", "valkey"])
def test_flavour_defaults_template_at_argument_validation(tmp_path: Path, flavour: str) -> None:
    plays = [
        {
            "hosts": "all",
            "gather_facts": True,
            "roles": [{"role": "redis", "vars": {"redis_server_flavour": flavour}}],
        }
    ]
    run = run_playbook(tmp_path, plays)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "missing required arguments: redis_admin_password" in output, output[-3000:]
    assert "is undefined" not in output, output[-3000:]
