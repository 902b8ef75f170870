"""Role-level tests: run ansible-playbook from the tool venv against localhost
(connection local) with generated playbooks that include single task files of
the roles. Nothing is installed and nothing outside a temporary directory is
written; Redis checks start throw-away redis-server processes on local ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("GP_TOOLS", ROOT / ".venv-tools"))


def ansible_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_HOME": str(tmp / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / ".ansible-tmp"),
    }


def run_playbook(
    tmp: Path,
    plays: list[dict[str, Any]],
    extra_vars: dict[str, Any] | None = None,
    inventory: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Writes ``plays`` (JSON is YAML) and runs them on localhost, or on the hosts of
    ``inventory`` (which says how to reach them); output captured."""
    playbook = tmp / "playbook.yml"
    playbook.write_text(json.dumps(plays, indent=1))
    hosts = ["-i", str(inventory)] if inventory else ["-i", "localhost,", "-c", "local"]
    argv = [
        str(TOOLS / "bin" / "ansible-playbook"),
        *hosts,
        "-e",
        f"ansible_python_interpreter={TOOLS / 'bin' / 'python'}",
    ]
    if extra_vars is not None:
        path = tmp / "extra-vars.json"
        path.write_text(json.dumps(extra_vars))
        argv += ["-e", f"@{path}"]
    return subprocess.run(
        [*argv, str(playbook)],
        cwd=tmp,
        env=ansible_env(tmp),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session", autouse=True)
def _tools() -> None:
    if not (TOOLS / "bin" / "ansible-playbook").exists():
        pytest.fail(f"no ansible-playbook in {TOOLS}: run scripts/setup-test-hosts.sh --no-image")


# --- throw-away Redis -------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_cli(
    port: int, *args: str, password: str | None = None, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """redis-cli on 127.0.0.1; the password through REDISCLI_AUTH, never argv."""
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    argv = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), "--no-auth-warning", "--raw"]
    if password is not None:
        env["REDISCLI_AUTH"] = password
    if user is not None:
        argv += ["--user", user]
    return subprocess.run(
        [*argv, *args], env=env, capture_output=True, text=True, timeout=10, check=False
    )


def wait_until(check: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Servers:
    """redis-server processes started by one test, stopped at its end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, *args: str, log_name: str) -> tuple[subprocess.Popen[bytes], Path]:
        if not Path(REDIS_SERVER).exists():
            pytest.fail("redis-server is not installed (scripts/test-all.sh installs it)")
        log = self.tmp / log_name
        with log.open("wb") as fh:
            proc = subprocess.Popen([REDIS_SERVER, *args], stdout=fh, stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        return proc, log

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        for proc, _ in self.procs:
            self.stop(proc)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    try:
        yield s
    finally:
        s.close()


# --- the redis role's assert.yml, case by case -------------------------------

# Variables that pass every check of roles/redis/tasks/assert.yml.
ASSERT_BASE: dict[str, Any] = {
    "redis_allow_untested_platform": True,
    "redis_admin_password": "Adm1n-Passw0rd-For-The-Tests",
    "redis_bind": ["127.0.0.1"],
    "redis_acl_users": [
        {
            "name": "guard-proxy",
            "password": "Pr0xy-Passw0rd-For-The-Tests",
            "key_patterns": ["guard:*"],
        }
    ],
}

SENTINEL_BASE: dict[str, Any] = {
    **ASSERT_BASE,
    "redis_sentinel_enabled": True,
    "redis_replication_hosts": ["localhost"],
    "redis_replication_primary": "localhost",
    "redis_sentinel_quorum": 1,
    "redis_replication_password": "Repl1cation-Passw0rd-Tests",
    "redis_sentinel_acl_password": "Sent1nel-ACL-Passw0rd-Tests",
    "redis_sentinel_password": "Sent1nel-Passw0rd-For-Tests",
    "redis_sentinel_client_password": "Sent1nel-Cl1ent-Passw0rd-Tests",
}


def checks_task(role: str) -> dict[str, Any]:
    """The task that runs roles/<role>/tasks/assert.yml with ``public: true``: the role's
    checks, and its defaults and vars loaded for the tasks after it in the play."""
    return {
        "name": "Check the variables (and load the role)",
        "ansible.builtin.include_role": {"name": role, "tasks_from": "assert", "public": True},
    }


def run_assert_cases(
    tmp: Path,
    cases: dict[str, dict[str, Any]],
    role: str = "redis",
    then: Callable[[str, Path], list[dict[str, Any]]] | None = None,
    facts: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, dict[str, Any]], str]:
    """One play per case: roles/<role>/tasks/assert.yml with the case's variables
    (play vars: above the role's defaults), then the tasks ``then(case, tmp / "results")``
    gives. ``facts[case]`` are set with set_fact first: what another host's hostvars would
    hold (play vars are not hostvars); facts outlive their play, so give each case all the
    keys the others set. Returns, per case, ``{"ok": bool, "task": failed task,
    "msgs": [messages]}``, and ansible-playbook's output."""
    out = tmp / "results"
    out.mkdir()
    plays = []
    for name, variables in cases.items():
        dest = str(out / f"{name}.json")
        plays.append(
            {
                "name": name,
                "hosts": "localhost",
                "gather_facts": False,
                "vars": variables,
                "tasks": [
                    {
                        "name": "Run the checks",
                        "block": [
                            *(
                                [{"name": "Set the hostvars", "ansible.builtin.set_fact": facts[name]}]
                                if facts and facts.get(name)
                                else []
                            ),
                            {
                                "name": "Include assert.yml",
                                "ansible.builtin.include_role": {
                                    "name": role,
                                    "tasks_from": "assert",
                                },
                            },
                            *(then(name, out) if then else []),
                            {
                                "name": "Passed",
                                "ansible.builtin.copy": {
                                    "dest": dest,
                                    "content": '{"ok": true}',
                                    "mode": "0600",
                                },
                            },
                        ],
                        "rescue": [
                            {
                                "name": "Failed",
                                "ansible.builtin.copy": {
                                    "dest": dest,
                                    "mode": "0600",
                                    "content": "{{ {'ok': false, 'task': ansible_failed_task.name,"
                                    " 'msgs': [ansible_failed_result.msg | default('')]"
                                    " + (ansible_failed_result.results | default([])"
                                    " | selectattr('failed', 'defined') | selectattr('failed')"
                                    " | map(attribute='msg') | list)} | to_json }}",
                                },
                            }
                        ],
                    }
                ],
            }
        )
    run = run_playbook(tmp, plays)
    results: dict[str, dict[str, Any]] = {}
    for name in cases:
        path = out / f"{name}.json"
        if not path.exists():
            raise AssertionError(f"case {name} left no result:\n{run.stdout[-4000:]}{run.stderr}")
        results[name] = json.loads(path.read_text())
    return results, run.stdout + run.stderr
