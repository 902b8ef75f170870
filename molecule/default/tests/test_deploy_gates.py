"""What the deployment refuses, run after the failover tests (they stop and start services).

- ``--check --diff`` over the converged stack reports nothing to change and shows no secret;
- liveness (``/health``) and readiness (``/ready``) are different answers: without its
  upstream the proxy is live but not ready, and says why;
- with Redis stopped, or with a wrong Redis password, the converge of a host with
  ``guard_proxy_redis_required`` fails with check-redis's reason, and the play shows no secret.

Playbooks run from this controller with Molecule's own inventory and ansible.cfg
(``ANSIBLE_CONFIG`` and ``MOLECULE_*`` reach the verifier's environment).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gplib import (
    PROXY_UNIT,
    REDIS_UNIT,
    http,
    proxy_redis_credentials,
    proxy_url,
    run_playbook,
    wait_for,
)

FAKE_OLLAMA_UNIT = "fake-ollama.service"


def _recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    recap: dict[str, dict[str, int]] = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        m = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if m:
            recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return recap


def _ready(proxy_host: Any) -> dict[str, Any]:
    return http(proxy_host, "GET", proxy_url(proxy_host) + "/ready")


@pytest.fixture
def restore(redis_host: Any, proxy_host: Any) -> Iterator[None]:
    """Whatever a test stopped or broke, leave the stack running and ready."""
    yield
    redis_host.run("systemctl start %s", REDIS_UNIT)
    proxy_host.run("systemctl start %s %s", FAKE_OLLAMA_UNIT, PROXY_UNIT)
    wait_for(lambda: _ready(proxy_host)["status"] == 200, timeout=60)


def test_check_diff_on_the_converged_stack_changes_nothing(proxy_host: Any) -> None:
    run = run_playbook("--check", "--diff", "molecule/shared/converge.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    recap = _recap(run.stdout)
    assert {"redis1", "proxy1"} <= set(recap), run.stdout[-2000:]
    changed = {host: c["changed"] for host, c in recap.items() if c.get("changed")}
    assert changed == {}, run.stdout[-4000:]
    _, password = proxy_redis_credentials(proxy_host)
    assert password not in run.stdout + run.stderr


def test_liveness_and_readiness_differ_without_upstream(proxy_host: Any, restore: None) -> None:
    ready = _ready(proxy_host)
    assert ready["status"] == 200, ready
    assert ready["json"]["status"] == "ready"
    assert ready["json"]["checks"]["cache"]["active_backend"] == "redis"

    proxy_host.run("systemctl stop %s", FAKE_OLLAMA_UNIT)
    not_ready = wait_for(lambda: (r := _ready(proxy_host))["status"] == 503 and r, timeout=20)
    assert not_ready, _ready(proxy_host)
    assert not_ready["json"]["status"] == "not ready"
    assert any("upstream" in reason for reason in not_ready["json"]["reasons"]), not_ready
    health = http(proxy_host, "GET", proxy_url(proxy_host) + "/health")
    assert health["status"] == 200 and health["json"]["status"] == "ok"

    proxy_host.run("systemctl start %s", FAKE_OLLAMA_UNIT)
    assert wait_for(lambda: _ready(proxy_host)["status"] == 200, timeout=30)


def test_required_redis_stopped_fails_the_converge(
    redis_host: Any, proxy_host: Any, restore: None
) -> None:
    redis_host.run("systemctl stop %s", REDIS_UNIT)
    run = run_playbook("playbooks/guard_proxy.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert "guard_proxy_redis_required is true" in out, out[-3000:]
    # check-redis's own reason (refused or unresolvable), not just "it failed".
    assert re.search(r"refused|cannot connect|not reachable|resolve", out, re.I), out[-3000:]
    # The proxy itself stays live on its memory cache meanwhile.
    health = http(proxy_host, "GET", proxy_url(proxy_host) + "/health")
    assert health["status"] == 200


def test_required_redis_wrong_password_fails_without_showing_it(
    proxy_host: Any, restore: None, tmp_path: Path
) -> None:
    _, password = proxy_redis_credentials(proxy_host)
    wrong = "wrong-" + secrets.token_urlsafe(24)
    # An extra-vars file (0600), never the command line.
    extra = tmp_path / "wrong-password.json"
    extra.touch(mode=0o600)
    extra.write_text(json.dumps({"guard_proxy_redis_password": wrong}))
    run = run_playbook("playbooks/guard_proxy.yml", "-e", f"@{extra}")
    out = run.stdout + run.stderr
    try:
        assert run.returncode != 0, out[-3000:]
        assert "guard_proxy_redis_required is true" in out, out[-3000:]
        assert re.search(r"WRONGPASS|auth", out, re.I), out[-3000:]
        assert wrong not in out and password not in out
    finally:
        # Put the right credential back (and restart the proxy with it).
        fixed = run_playbook("playbooks/guard_proxy.yml")
        assert fixed.returncode == 0, (fixed.stdout + fixed.stderr)[-3000:]
