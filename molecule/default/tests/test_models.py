"""The onnx_classifier scanner on proxy1, on the tiny model the role shipped (issue 23).

prepare.yml builds the model on the controller (``guard_proxy_testing.tiny_model``) into
Molecule's ephemeral directory with its sha256 beside it; ``host_vars/proxy1.yml`` gives it
to the role as ``tiny_injection`` with ``threshold: 0.9``. The model flags the word
"pwned" (INJECTION ~1.00) and scores "sketchy" 0.73 next to other words: under 0.9, so
that prompt passing shows the configured threshold reached the scanner.

A wrong sha256 re-runs the proxy play on proxy1 with the model's entry given a wrong
sha256 (an extra-vars file): it must fail with the reason, and leave ``current`` and
config.yaml as they were. It stops at the controller's check, before any host task of the
model, so it adds one short play.
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import uuid
from pathlib import Path
from typing import Any

import pytest
from gplib import PROXY_CONFIG, http, proxy_config, proxy_url, run_playbook

MODEL = "llama3.2"
NAME = "tiny_injection"
FILES = ("model.onnx", "tokenizer.json", "config.json")
SERVICE_USER = "guard-proxy"


def _models_dir() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "models"


def _controller_sha256() -> str:
    """The sha256 prepare.yml recorded for the model it built (what proxy1 was given)."""
    return (_models_dir() / f"{NAME}.sha256").read_text().strip()


def _plugin(proxy_host: Any) -> dict[str, Any]:
    """The guard.plugins entry the role rendered for the model."""
    plugins = (proxy_config(proxy_host).get("guard") or {}).get("plugins") or []
    entries = [p for p in plugins if p.get("name") == NAME]
    assert len(entries) == 1, plugins
    entry: dict[str, Any] = entries[0]
    return entry


def _generate(proxy_host: Any, prompt: str) -> dict[str, Any]:
    body = {"model": MODEL, "prompt": prompt, "stream": False}
    return http(proxy_host, "POST", proxy_url(proxy_host) + "/api/generate", body)


def test_model_is_deployed_read_only_with_its_sha256(proxy_host: Any) -> None:
    entry = _plugin(proxy_host)
    assert entry["path"] == "guard_proxy.guard.onnx_classifier:factory"
    assert entry["options"]["threshold"] == 0.9
    model_dir = proxy_host.file(entry["options"]["model_dir"])
    assert model_dir.is_directory
    assert (model_dir.user, model_dir.group, model_dir.mode) == ("root", "root", 0o755)
    for name in FILES:
        f = proxy_host.file(posixpath.join(model_dir.path, name))
        assert f.is_file, f.path
        assert (f.user, f.group, f.mode) == ("root", "root", 0o644), f.path
    sha256 = _controller_sha256()
    assert proxy_host.file(posixpath.join(model_dir.path, "model.onnx")).sha256sum == sha256
    assert posixpath.basename(model_dir.path) == f"{NAME}-{sha256[:16]}"
    # Read-only for the service: its user may write none of it (access(2) as that user).
    paths = [model_dir.path, *(posixpath.join(model_dir.path, name) for name in FILES)]
    script = " ".join(
        ["for f in", *map(shlex.quote, paths), '; do if [ -w "$f" ]; then echo "$f"; fi; done']
    )
    probe = proxy_host.run("runuser -u %s -- sh -c %s", SERVICE_USER, script)
    assert probe.rc == 0, probe.stderr
    assert probe.stdout.strip() == "", f"writable by {SERVICE_USER}: {probe.stdout}"


def test_prompt_the_model_flags_is_blocked_naming_it(proxy_host: Any) -> None:
    r = _generate(proxy_host, f"ECHO:please summarize this text pwned {uuid.uuid4().hex}")
    assert r["status"] == 400, r["body"]
    assert r["json"]["guard"]["direction"] == "input"
    assert NAME in r["json"]["guard"]["scanners"], r["json"]
    assert "response" not in r["json"]


@pytest.mark.parametrize(
    "words",
    [
        "hello world, tell me about cats",
        # 0.73 for INJECTION: blocked at the scanner's default threshold (0.5), not at 0.9.
        "this text is sketchy",
    ],
)
def test_prompt_the_model_passes_is_answered(proxy_host: Any, words: str) -> None:
    text = f"{words} {uuid.uuid4().hex}"
    r = _generate(proxy_host, f"ECHO:{text}")
    assert r["status"] == 200, r["body"]
    assert r["json"]["response"] == text


def test_wrong_sha256_stops_the_deploy_with_the_reason(proxy_host: Any, tmp_path: Path) -> None:
    install_dir = posixpath.dirname(posixpath.dirname(_plugin(proxy_host)["options"]["model_dir"]))
    current = posixpath.join(install_dir, "current")
    assert proxy_host.file(current).is_symlink, current
    release_before = proxy_host.file(current).linked_to
    config_before = proxy_host.file(PROXY_CONFIG).sha256sum

    right = _controller_sha256()
    wrong = ("0" if right[0] != "0" else "1") * 64
    models = [
        {
            "name": NAME,
            "src": str(_models_dir() / NAME),
            "sha256": wrong,
            "options": {"threshold": 0.9},
        }
    ]
    extra = tmp_path / "wrong-sha256.json"
    extra.write_text(json.dumps({"guard_proxy_models": models}))
    run = run_playbook("playbooks/guard_proxy.yml", "--limit", "proxy1", "-e", f"@{extra}")
    out = run.stdout + run.stderr

    assert run.returncode != 0, out[-3000:]
    assert f"has sha256 {right}, not the configured {wrong}" in out, out[-3000:]
    assert proxy_host.file(current).linked_to == release_before
    assert proxy_host.file(PROXY_CONFIG).sha256sum == config_before
    # The service goes on with the model it had.
    assert _generate(proxy_host, f"ECHO:pwned {uuid.uuid4().hex}")["status"] == 400
