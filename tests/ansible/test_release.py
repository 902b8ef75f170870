"""Atomic releases in roles/guard_proxy: a new release becomes ``current`` only after it
imports what the service runs and accepts the configuration the run writes
(tasks/release.yml); a release that fails leaves the previous one in force. And a dry
run (``--check``) on a host whose apt lists are empty does not fail (tasks/packages.yml).

The good release is the app's own venv (.venv, scripts/setup-app-venv.sh: the same
packages a release venv gets from the wheelhouse); the broken one is a bare venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TOOLS, ansible_env, run_playbook

APP_VENV = ROOT / ".venv"


@pytest.fixture
def install_dir(tmp_path: Path) -> Path:
    """An install directory whose `current` is the release "old", beside a good
    release "good" (the app venv) and a broken one "broken" (no guard_proxy)."""
    if not (APP_VENV / "bin" / "guard-proxy").exists():
        pytest.fail(f"no app venv in {APP_VENV}: run scripts/setup-app-venv.sh")
    d = tmp_path / "install"
    releases = d / "releases"
    releases.mkdir(parents=True)
    (releases / "old").mkdir()
    (releases / "good").symlink_to(APP_VENV)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(releases / "broken")],
        check=True, timeout=60,
    )  # fmt: skip
    (d / "current").symlink_to(releases / "old")
    return d


def switch(tmp: Path, install_dir: Path, release: str, **variables: Any) -> tuple[bool, str]:
    plays = [
        {
            "name": "Switch to a new release",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Check the release and switch (roles/guard_proxy/tasks/release.yml)",
                    "ansible.builtin.include_role": {
                        "name": "guard_proxy",
                        "tasks_from": "release",
                    },
                }
            ],
        }
    ]
    extra = {
        "guard_proxy_install_dir": str(install_dir),
        "guard_proxy_release_id": release,
        "guard_proxy_config_dir": str(tmp / "etc"),
        # No guard-proxy unit here: the restart handler has nothing to do.
        "_guard_proxy_runs": False,
        **variables,
    }
    run = run_playbook(tmp, plays, extra_vars=extra)
    return run.returncode == 0, run.stdout + run.stderr


def current(install_dir: Path) -> str:
    return os.readlink(install_dir / "current")


def test_a_release_that_passes_its_checks_becomes_current(
    tmp_path: Path, install_dir: Path
) -> None:
    ok, out = switch(tmp_path, install_dir, "good")
    assert ok, out[-4000:]
    assert current(install_dir) == str(install_dir / "releases" / "good")
    assert "Check the configuration with the new release" in out


def test_a_release_that_cannot_import_the_service_leaves_the_previous_current(
    tmp_path: Path, install_dir: Path
) -> None:
    ok, out = switch(tmp_path, install_dir, "broken")
    assert not ok
    assert "Check that the new release imports what the service runs" in out
    assert "No module named 'guard_proxy'" in out
    assert current(install_dir) == str(install_dir / "releases" / "old")


def test_a_configuration_the_new_release_rejects_leaves_the_previous_current(
    tmp_path: Path, install_dir: Path
) -> None:
    """The release imports fine, but the configuration of this run names a scanner it does
    not know: check-config refuses it, naming the key, before `current` moves."""
    ok, out = switch(
        tmp_path, install_dir, "good", guard_proxy_guard_input={"no_such_scanner": {}}
    )
    assert not ok
    assert "Check the configuration with the new release" in out
    assert "error: guard.input.no_such_scanner: unknown key" in out
    assert current(install_dir) == str(install_dir / "releases" / "old")
    assert "RUNNING HANDLER" not in out


# --- --check on a host with empty apt lists ----------------------------------------


def test_check_mode_with_empty_apt_lists_reports_instead_of_failing(tmp_path: Path) -> None:
    """apt is pointed at empty package lists (APT_CONFIG); a package this machine lacks
    stands for what a fresh host lacks. The dry run goes through and says what a real
    run would install; a real run would refresh the lists first."""
    lists = tmp_path / "apt" / "lists"
    (lists / "partial").mkdir(parents=True)
    (tmp_path / "apt" / "cache" / "archives" / "partial").mkdir(parents=True)
    conf = tmp_path / "apt" / "apt.conf"
    conf.write_text(f'Dir::State::Lists "{lists}";\nDir::Cache "{tmp_path / "apt" / "cache"}";\n')
    missing = "hello"  # GNU hello: not installed on a build machine
    assert subprocess.run(["dpkg", "-s", missing], capture_output=True, check=False).returncode != 0
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n"
        f"  environment:\n    APT_CONFIG: {conf}\n"
        "  tasks:\n    - name: Install the packages (roles/guard_proxy/tasks/packages.yml)\n"
        "      ansible.builtin.include_role:\n        name: guard_proxy\n"
        "        tasks_from: packages\n"
    )
    run = subprocess.run(
        [str(TOOLS / "bin/ansible-playbook"), "-i", "localhost,", "-c", "local", "--check",
         "-e", f"ansible_python_interpreter={TOOLS / 'bin/python'}",
         "-e", f"_guard_proxy_apt_lists_dir={lists}",
         "-e", f'{{"guard_proxy_packages": ["python3", "{missing}"]}}', str(playbook)],
        cwd=tmp_path, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "NoneType" not in out
    assert f"a real run refreshes them and installs what is missing of python3, {missing}" in out
    assert not list(lists.glob("*_Packages*"))  # the dry run refreshed nothing
