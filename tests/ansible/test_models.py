"""guard_proxy_models in the guard_proxy role: each model copied from the controller into a
directory named after its sha256, verified there, and wired into config.yaml as an
onnx_classifier plug-in; a wrong sha256 or a missing file stops the deploy with the reason
before anything is copied."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT, checks_task, run_playbook

BASE: dict[str, Any] = {
    "guard_proxy_allow_untested_platform": True,
    "guard_proxy_cache_backend": "memory",
    "guard_proxy_target_python": {"executable": "/usr/bin/python3"},
    "guard_proxy_loadbalancers": [],
    # No service on this machine: the restart the copies notify is skipped.
    "_guard_proxy_runs": False,
}
FILES = ("model.onnx", "tokenizer.json", "config.json")


def model_source(tmp: Path, name: str, payload: bytes) -> tuple[Path, str]:
    """A model directory on the "controller" (the role only copies and hashes it)."""
    src = tmp / "controller" / name
    src.mkdir(parents=True)
    (src / "model.onnx").write_bytes(payload)
    (src / "tokenizer.json").write_text("{}")
    (src / "config.json").write_text('{"id2label": {"0": "SAFE", "1": "INJECTION"}}')
    return src, hashlib.sha256(payload).hexdigest()


def deploy(tmp: Path, models: list[dict[str, Any]]) -> tuple[Any, Path, Path]:
    """Run assert.yml and models.yml on localhost, then render config.yaml."""
    models_dir = tmp / "models"
    out = tmp / "config.yaml"
    plays = [
        {
            "name": "Ship the models",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                checks_task("guard_proxy"),
                {
                    "name": "Ship and verify the models",
                    "ansible.builtin.include_role": {"name": "guard_proxy", "tasks_from": "models"},
                },
                {
                    "name": "Render config.yaml",
                    "ansible.builtin.template": {
                        "src": str(ROOT / "roles/guard_proxy/templates/config.yaml.j2"),
                        "dest": str(out),
                        "mode": "0600",
                    },
                },
            ],
        }
    ]
    variables = {**BASE, "guard_proxy_models": models, "guard_proxy_models_dir": str(models_dir)}
    return run_playbook(tmp, plays, extra_vars=variables), models_dir, out


def test_models_are_copied_read_only_verified_and_configured(tmp_path: Path) -> None:
    src, digest = model_source(tmp_path, "tiny", b"tiny model bytes")
    models = [
        {"name": "tiny", "src": str(src), "sha256": digest.upper(), "options": {"threshold": 0.9}}
    ]
    run, models_dir, config = deploy(tmp_path, models)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    deployed = models_dir / f"tiny-{digest[:16]}"
    for name in FILES:
        path = deployed / name
        assert path.read_bytes() == (src / name).read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o644 and path.stat().st_uid == 0, (name, oct(mode))
    guard = yaml.safe_load(config.read_text())["guard"]
    assert guard["plugins"] == [
        {
            "name": "tiny",
            "path": "guard_proxy.guard.onnx_classifier:factory",
            "directions": ["input"],
            "options": {"threshold": 0.9, "model_dir": str(deployed)},
        }
    ]
    assert guard["model_threads"] == 0 and guard["scan_queue"] == 64

    # A new model: a new directory, config.yaml switches to it, the old one goes.
    (tmp_path / "controller" / "tiny" / "model.onnx").write_bytes(b"retrained")
    newer = hashlib.sha256(b"retrained").hexdigest()
    run, _, config = deploy(tmp_path, [{**models[0], "sha256": newer}])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    assert sorted(p.name for p in models_dir.iterdir()) == [f"tiny-{newer[:16]}"]
    plugin = yaml.safe_load(config.read_text())["guard"]["plugins"][0]
    assert plugin["options"]["model_dir"] == str(models_dir / f"tiny-{newer[:16]}")


def test_a_wrong_sha256_stops_the_deploy_with_the_reason_before_any_copy(
    tmp_path: Path,
) -> None:
    src, digest = model_source(tmp_path, "tiny", b"tiny model bytes")
    wrong = "0" * 64
    run, models_dir, config = deploy(tmp_path, [{"name": "tiny", "src": str(src), "sha256": wrong}])
    assert run.returncode != 0
    assert f"has sha256 {digest}, not the configured {wrong}" in run.stdout
    assert not models_dir.exists() and not config.exists()


def test_a_missing_model_file_stops_the_deploy(tmp_path: Path) -> None:
    src, digest = model_source(tmp_path, "tiny", b"tiny model bytes")
    (src / "tokenizer.json").unlink()
    run, _, _ = deploy(tmp_path, [{"name": "tiny", "src": str(src), "sha256": digest}])
    assert run.returncode != 0
    assert "tokenizer.json does not exist on the controller" in run.stdout


def test_malformed_or_clashing_entries_are_refused(tmp_path: Path) -> None:
    src, digest = model_source(tmp_path, "tiny", b"tiny model bytes")
    entry = {"name": "tiny", "src": str(src), "sha256": digest}
    for models in (
        [{**entry, "sha256": "abc"}],
        [entry, entry],
        [{**entry, "options": {"model_dir": "/elsewhere"}}],
    ):
        run, models_dir, _ = deploy(tmp_path, models)
        assert run.returncode != 0
        assert "sha256 must be the 64 hex digits of" in run.stdout
        assert not models_dir.exists()
