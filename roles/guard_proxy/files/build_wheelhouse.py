#!/usr/bin/env python3
"""Build guard-proxy's wheelhouse on the controller for a TARGET Python.

Usage: build_wheelhouse.py SPEC_JSON

SPEC_JSON is a JSON object:
  app_src      path of the app's source tree (holds pyproject.toml)
  lock         the app's lock file (requirements.lock: every dependency pinned
               with its hashes, written by `make lock`)
  dest         wheelhouse directory; emptied and refilled
  markers      the target's PEP 508 marker environment (python_full_version, ...)
  platforms    pip --platform tags the target accepts (manylinux_2_36_x86_64, ...)
  abi          the target's ABI tag, e.g. cp311
  pip_args     extra pip arguments (index URLs and the like)

The app's own wheel is built from a copy of the source (so the tree the
caller owns stays clean) with SOURCE_DATE_EPOCH fixed, so the same source
always gives the same bytes and a re-run changes nothing on the targets.
Dependencies are exactly the lock's: downloaded as binary wheels for the
target's platform and ABI with --require-hashes (a file whose sha256 is not
in the lock fails the build), then the app's own requirements are resolved
against those wheels alone (--no-index), so a lock that misses or
contradicts pyproject.toml fails here, on the controller, not on a host.
The app's wheel is added with --no-deps. pip evaluates environment markers
against the interpreter that runs it, not against --python-version
(redis-py needs async-timeout below Python 3.11.3, which a newer controller
would leave out), so pip runs here with its marker environment replaced by
the target's own.

dest receives wheelhouse-<sha256[:16]>.tar: every wheel and the lock (as
requirements.lock, so the target installs with --require-hashes too),
packed reproducibly (sorted names, fixed owner, mode and time), so the
controller ships one file per release and identical inputs give an
identical archive. Archives older
than an hour other than the current one are pruned.

The build is reused: the digest of its inputs (the spec but dest, the lock, the app's source
as copied, this script) names a record in dest (.inputs-<digest>.json); when it and its
archive are there, the archive is what a build would make again, and pip does not run.

Prints one JSON line:
  {"tar": path, "sha256": hex digest of the tar, "app_wheel": name, "wheels": [names],
   "lock": the lock's name inside the tar}.
Exit status is non-zero with pip's output on stderr when the build fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

# Runs pip with packaging's default marker environment overridden.
_PIP_WITH_TARGET_MARKERS = """
import json, os, runpy
import pip._vendor.packaging.markers as markers
_target = json.loads(os.environ["GUARD_PROXY_TARGET_MARKERS"])
_default = markers.default_environment
markers.default_environment = lambda: {**_default(), **_target}
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""

_SOURCE_IGNORE = shutil.ignore_patterns(
    "tests",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".venv*",
)

# 1980-01-01: the earliest timestamp a zip file can hold.
_SOURCE_DATE_EPOCH = "315532800"

# Name of the lock inside the archive (next to the wheels).
LOCK_NAME = "requirements.lock"


def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"build_wheelhouse: {' '.join(argv[:4])} ... failed ({proc.returncode})")


def _inputs_digest(spec: dict[str, object], app_src: Path, lock: Path) -> str:
    """What the archive's bytes depend on: the spec (not dest), the lock, the app's source as
    the build copies it, and this script."""
    inputs = {k: v for k, v in spec.items() if k != "dest"}
    h = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode())
    h.update(Path(__file__).read_bytes())
    h.update(lock.read_bytes())
    for root, dirs, files in os.walk(app_src):
        ignored = _SOURCE_IGNORE(root, dirs + files)
        dirs[:] = sorted(d for d in dirs if d not in ignored)
        for name in sorted(f for f in files if f not in ignored):
            path = Path(root, name)
            h.update(str(path.relative_to(app_src)).encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()


def _reuse(record: Path) -> dict[str, object] | None:
    """The result recorded for these inputs when its archive is still there (both touched,
    so pruning keeps them), else None."""
    try:
        result = json.loads(record.read_text())
        tar = Path(result["tar"])
        if hashlib.sha256(tar.read_bytes()).hexdigest() != result["sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    os.utime(tar)
    os.utime(record)
    return dict(result)


def main() -> int:
    spec = json.loads(sys.argv[1])
    app_src = Path(spec["app_src"]).resolve()
    lock = Path(spec["lock"]).resolve()
    if not lock.is_file():
        raise SystemExit(f"build_wheelhouse: no lock file {lock}: run `make lock`")
    dest = Path(spec["dest"])
    record = dest / f".inputs-{_inputs_digest(spec, app_src, lock)}.json"
    reused = _reuse(record)
    if reused is not None:
        _prune(dest, keep=(Path(str(reused["tar"])), record))
        print(json.dumps(reused))
        return 0
    pip_args = list(spec.get("pip_args", []))
    env = dict(os.environ)
    env.update(
        SOURCE_DATE_EPOCH=_SOURCE_DATE_EPOCH,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONDONTWRITEBYTECODE="1",
        GUARD_PROXY_TARGET_MARKERS=json.dumps(spec["markers"]),
    )

    with tempfile.TemporaryDirectory(prefix="guard-proxy-wheelhouse-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "src"
        shutil.copytree(app_src, src, ignore=_SOURCE_IGNORE)
        app_dir = tmp / "app"
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--wheel-dir",
                str(app_dir),
                *pip_args,
                str(src),
            ],
            env,
        )
        app_wheels = sorted(app_dir.glob("*.whl"))
        if len(app_wheels) != 1:
            raise SystemExit(f"build_wheelhouse: expected one app wheel, got {app_wheels}")
        app_wheel = app_wheels[0]

        deps_dir = tmp / "wheels"
        platform_args = [arg for tag in spec["platforms"] for arg in ("--platform", tag)]
        target = [
            sys.executable,
            "-c",
            _PIP_WITH_TARGET_MARKERS,
            "download",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            spec["markers"]["python_full_version"],
            "--abi",
            spec["abi"],
            *platform_args,
        ]
        # The locked dependencies, each file checked against the lock's hashes.
        _run(
            [*target, "--require-hashes", "--dest", str(deps_dir), *pip_args, "-r", str(lock)],
            env,
        )
        # The app's own requirements, from those wheels alone: a stale lock
        # (a dependency pyproject.toml added, or a pin it no longer accepts)
        # fails here.
        _run(
            [
                *target,
                "--no-index",
                "--find-links",
                str(deps_dir),
                "--dest",
                str(tmp / "resolved"),
                str(app_wheel),
            ],
            env,
        )

        wheels = {p.name: p for p in deps_dir.glob("*.whl")}
        wheels[app_wheel.name] = app_wheel
        names = sorted(wheels)
        staged = tmp / "wheelhouse.tar"
        _pack(staged, [(name, wheels[name]) for name in names] + [(LOCK_NAME, lock)])

        # Publish under a name derived from the content, by an atomic rename
        # in dest: a concurrent run reading an earlier archive is never
        # disturbed, and a failed build leaves dest as it was.
        digest = hashlib.sha256(staged.read_bytes()).hexdigest()
        dest.mkdir(parents=True, exist_ok=True)
        tar = dest / f"wheelhouse-{digest[:16]}.tar"
        partial = dest / f".{tar.name}.{os.getpid()}.partial"
        shutil.copyfile(staged, partial)
        os.replace(partial, tar)

    result = {
        "tar": str(tar),
        "sha256": digest,
        "app_wheel": app_wheel.name,
        "wheels": names,
        "lock": LOCK_NAME,
    }
    partial = dest / f".{record.name}.{os.getpid()}.partial"
    partial.write_text(json.dumps(result))
    os.replace(partial, record)
    _prune(dest, keep=(tar, record))
    print(json.dumps(result))
    return 0


def _prune(dest: Path, keep: tuple[Path, ...], max_age: float = 3600.0) -> None:
    """Remove other archives, records (and leftovers) older than ``max_age`` seconds."""
    now = time.time()
    for path in dest.iterdir():
        if path not in keep and path.is_file() and now - path.stat().st_mtime > max_age:
            path.unlink(missing_ok=True)


def _pack(target: Path, members: list[tuple[str, Path]]) -> None:
    """Write a tar whose bytes depend only on the members' names and contents."""
    with tarfile.open(target, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in members:
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mtime = int(_SOURCE_DATE_EPOCH)
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with path.open("rb") as fh:
                tar.addfile(info, fh)


if __name__ == "__main__":
    sys.exit(main())
