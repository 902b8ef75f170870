"""Client keys for tests: random keys and the keys file the proxy reads (hashes only)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def new_key() -> str:
    """A random client key, as the vault would hold it."""
    return "gpk-" + secrets.token_urlsafe(32)


def write_keys_file(path: Path, keys: Mapping[str, tuple[str, Mapping[str, int]]]) -> Path:
    """Write ``{name: (key, limits)}`` as a keys file (atomically, by rename) and return it."""
    entries: list[dict[str, Any]] = [
        {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "limits": dict(limits)}
        for name, (key, limits) in keys.items()
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"keys": entries}))
    tmp.replace(path)
    return path


def keys_config(path: Path, **extra: Any) -> dict[str, Any]:
    """The ``access.keys`` section turning keys on with ``path``."""
    return {"access": {"keys": {"enabled": True, "file": str(path), **extra}}}
