"""The app's locks (make lock) agree with app/pyproject.toml, carry hashes, hold
for the target hosts' Python, and are what the wheelhouse, the hosts and the
test venv install: --require-hashes everywhere, the app itself with --no-deps."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

APP = ROOT / "app"
LOCK = APP / "requirements.lock"
ONNX_LOCK = APP / "requirements-onnx.lock"
TEST_LOCK = APP / "requirements-test.lock"
PYPROJECT = tomllib.loads((APP / "pyproject.toml").read_text())["project"]

# Debian 12 (the target hosts) and a newer 3.11 such as a controller's.
DEBIAN_12 = {"python_full_version": "3.11.2", "python_version": "3.11", "sys_platform": "linux",
             "platform_machine": "x86_64", "platform_python_implementation": "CPython",
             "implementation_name": "cpython"}  # fmt: skip
NEWER_311 = {**DEBIAN_12, "python_full_version": "3.11.9"}


def parse_lock(path: Path) -> dict[str, dict[str, Any]]:
    """name -> {"name", "version", "marker" (or None), "hashes"}."""
    entries: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            assert current is not None, raw
            current["hashes"].append(line.removeprefix("--hash="))
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one ==
        assert spec.operator == "==", raw
        name = canonicalize_name(req.name)
        current = {"name": name, "version": spec.version, "marker": req.marker, "hashes": []}
        # A name pinned twice under exclusive markers (numpy per Python version): the
        # second pin is keyed with its marker.
        entries[name if name not in entries else f"{name} ; {req.marker}"] = current
    return entries


def installed_for(entries: dict[str, dict[str, Any]], env: dict[str, str]) -> dict[str, str]:
    return {
        e["name"]: e["version"]
        for e in entries.values()
        if e["marker"] is None or Marker(str(e["marker"])).evaluate(env)
    }


def test_every_pin_has_sha256_hashes() -> None:
    for path in (LOCK, ONNX_LOCK, TEST_LOCK):
        for name, entry in parse_lock(path).items():
            assert entry["hashes"], f"{path.name}: {name} has no hash"
            assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in entry["hashes"]), name


@pytest.mark.parametrize("env", [DEBIAN_12, NEWER_311], ids=["debian12-3.11.2", "python-3.11.9"])
def test_every_pyproject_dependency_is_pinned_within_its_bounds(env: dict[str, str]) -> None:
    runtime = installed_for(parse_lock(LOCK), env)
    onnx = installed_for(parse_lock(ONNX_LOCK), env)
    tests = installed_for(parse_lock(TEST_LOCK), env)
    extras = PYPROJECT["optional-dependencies"]
    for lock, requirements in (
        (runtime, PYPROJECT["dependencies"]),
        (onnx, PYPROJECT["dependencies"] + extras["onnx"]),
        (tests, PYPROJECT["dependencies"] + extras["onnx"] + extras["test"]),
    ):
        for text in requirements:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            assert name in lock, f"{req.name} is not in the lock: run `make lock`"
            assert req.specifier.contains(Version(lock[name]), prereleases=True), (
                f"{req.name} {lock[name]} does not satisfy {req.specifier}: run `make lock`"
            )


def test_extras_of_dependencies_are_locked_too() -> None:
    """uvicorn[standard] and redis[hiredis] bring packages of their own."""
    runtime = installed_for(parse_lock(LOCK), DEBIAN_12)
    assert {"hiredis", "uvloop", "httptools", "websockets", "watchfiles"} <= set(runtime)


def test_the_lock_holds_for_the_target_python_not_only_the_controllers() -> None:
    """One universal resolution with markers: redis-py needs async-timeout below
    Python 3.11.3, which Debian 12 (3.11.2) gets and a newer 3.11 does not."""
    entries = parse_lock(LOCK)
    assert "async-timeout" in installed_for(entries, DEBIAN_12)
    assert "async-timeout" not in installed_for(entries, NEWER_311)
    assert "--universal" in (ROOT / "scripts/lock-app.sh").read_text()


@pytest.mark.parametrize(
    ("base", "wider"),
    [(LOCK, ONNX_LOCK), (ONNX_LOCK, TEST_LOCK)],
    ids=["onnx-pins-runtime", "test-pins-onnx"],
)
def test_each_lock_pins_exactly_the_versions_of_the_one_before(base: Path, wider: Path) -> None:
    """runtime -> onnx -> test: the tests run what deploys, with and without models."""
    narrow, wide = parse_lock(base), parse_lock(wider)
    for name, entry in narrow.items():
        assert name in wide, name
        assert wide[name]["version"] == entry["version"], name
        assert str(wide[name]["marker"]) == str(entry["marker"]), name


def test_the_onnx_extra_brings_no_torch() -> None:
    onnx = installed_for(parse_lock(ONNX_LOCK), DEBIAN_12)
    assert {"onnxruntime", "tokenizers", "numpy"} <= set(onnx)
    assert "torch" not in onnx


def test_the_role_ships_the_onnx_lock_when_models_are_configured() -> None:
    role_vars = yaml.safe_load((ROOT / "roles/guard_proxy/vars/main.yml").read_text())
    choice = role_vars["_guard_proxy_lock_file"]
    assert "'requirements-onnx.lock' if guard_proxy_models | length > 0" in choice
    assert "else 'requirements.lock'" in choice


# --- who installs the lock, and how --------------------------------------------


def _load_builder() -> Any:
    path = ROOT / "roles/guard_proxy/files/build_wheelhouse.py"
    spec = importlib.util.spec_from_file_location("build_wheelhouse", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spec(tmp: Path, lock: Path) -> dict[str, Any]:
    return {
        "app_src": str(APP),
        "lock": str(lock),
        "dest": str(tmp / "dest"),
        "markers": DEBIAN_12,
        "abi": "cp311",
        "platforms": ["manylinux_2_36_x86_64"],
        "pip_args": [],
    }


def test_the_wheelhouse_downloads_the_lock_with_require_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """build_wheelhouse.py with pip replaced by a recorder: the dependencies come
    from `-r requirements.lock --require-hashes`, the app's own requirements are
    then resolved from those wheels alone, and the lock travels in the archive."""
    builder = _load_builder()
    calls: list[list[str]] = []

    def fake_run(argv: list[str], env: dict[str, str]) -> None:
        calls.append(argv)
        if "wheel" in argv:
            out = Path(argv[argv.index("--wheel-dir") + 1])
            out.mkdir(parents=True)
            (out / "guard_proxy-0.1.0-py3-none-any.whl").write_bytes(b"app")
        elif "--require-hashes" in argv:
            out = Path(argv[argv.index("--dest") + 1])
            out.mkdir(parents=True)
            (out / "redis-8.1.0-py3-none-any.whl").write_bytes(b"dep")

    monkeypatch.setattr(builder, "_run", fake_run)
    monkeypatch.setattr(sys, "argv", ["build_wheelhouse.py", json.dumps(_spec(tmp_path, LOCK))])
    assert builder.main() == 0
    result = json.loads(capsys.readouterr().out)

    wheel, download, resolve = calls
    assert wheel[3:6] == ["wheel", "--no-deps", "--wheel-dir"]
    assert "--require-hashes" in download and "--only-binary=:all:" in download
    assert download[-2:] == ["-r", str(LOCK)]
    assert not any(a.endswith(".whl") for a in download), (
        "the app wheel must not be resolved online"
    )
    assert "--no-index" in resolve and resolve[-1].endswith("guard_proxy-0.1.0-py3-none-any.whl")
    assert "--require-hashes" not in resolve
    with tarfile.open(result["tar"]) as tar:
        assert sorted(tar.getnames()) == [
            "guard_proxy-0.1.0-py3-none-any.whl",
            "redis-8.1.0-py3-none-any.whl",
            "requirements.lock",
        ]
        member = tar.extractfile("requirements.lock")
        assert member is not None and member.read() == LOCK.read_bytes()
    assert result["lock"] == "requirements.lock"


def test_the_wheelhouse_is_reused_while_its_inputs_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same spec, lock, source and builder: the recorded archive, pip not run; another
    lock: built again."""
    builder = _load_builder()
    calls: list[list[str]] = []

    def fake_run(argv: list[str], env: dict[str, str]) -> None:
        calls.append(argv)
        flag = "--wheel-dir" if "wheel" in argv else "--dest"
        out = Path(argv[argv.index(flag) + 1])
        out.mkdir(parents=True, exist_ok=True)
        if "wheel" in argv:
            (out / "guard_proxy-0.1.0-py3-none-any.whl").write_bytes(b"app")
        elif "--require-hashes" in argv:
            (out / "redis-8.1.0-py3-none-any.whl").write_bytes(b"dep")

    monkeypatch.setattr(builder, "_run", fake_run)
    spec = _spec(tmp_path, LOCK)
    monkeypatch.setattr(sys, "argv", ["build_wheelhouse.py", json.dumps(spec)])
    assert builder.main() == 0
    first = json.loads(capsys.readouterr().out)
    built = len(calls)
    assert builder.main() == 0
    assert json.loads(capsys.readouterr().out) == first
    assert len(calls) == built  # reused

    Path(first["tar"]).write_bytes(b"damaged")  # a record whose archive changed: rebuilt
    assert builder.main() == 0
    assert json.loads(capsys.readouterr().out) == first
    assert len(calls) == 2 * built

    other = tmp_path / "other.lock"
    other.write_bytes(LOCK.read_bytes() + b"\n# another lock\n")
    monkeypatch.setattr(sys, "argv", ["build_wheelhouse.py", json.dumps(_spec(tmp_path, other))])
    assert builder.main() == 0
    assert json.loads(capsys.readouterr().out)["sha256"] != first["sha256"]
    assert len(calls) == 3 * built


def test_the_wheelhouse_refuses_to_build_without_a_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder = _load_builder()
    monkeypatch.setattr(builder, "_run", lambda argv, env: pytest.fail("pip ran"))
    spec = _spec(tmp_path, tmp_path / "missing.lock")
    monkeypatch.setattr(sys, "argv", ["build_wheelhouse.py", json.dumps(spec)])
    with pytest.raises(SystemExit, match="make lock"):
        builder.main()


def test_the_hosts_install_the_lock_with_hashes_then_the_app_without_deps() -> None:
    tasks = yaml.safe_load((ROOT / "roles/guard_proxy/tasks/install.yml").read_text())
    block = next(t for t in tasks if "block" in t and t["name"].startswith("Install the release"))
    pip = [
        t["ansible.builtin.command"]["argv"]
        for t in block["block"]
        if "ansible.builtin.command" in t and "pip" in t["ansible.builtin.command"]["argv"]
        and "install" in t["ansible.builtin.command"]["argv"]
    ]  # fmt: skip
    deps, app = pip
    assert {"--no-index", "--require-hashes", "-r"} <= set(deps)
    assert deps[-1].endswith("{{ guard_proxy_wheelhouse.lock }}")
    assert {"--no-index", "--no-deps"} <= set(app)
    assert app[-1].endswith("{{ guard_proxy_wheelhouse.app_wheel }}")


def test_the_test_venv_installs_the_test_lock_with_hashes() -> None:
    script = (ROOT / "scripts/setup-app-venv.sh").read_text()
    assert 'lock="$GP_ROOT/app/requirements-test.lock"' in script
    assert '--require-hashes -r "$lock"' in script
    assert '--no-deps -e "$GP_ROOT/app"' in script
