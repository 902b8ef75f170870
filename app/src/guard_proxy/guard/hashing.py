"""The configuration hash the verdict cache puts in its keys.

It covers everything that can change a verdict of one direction: the package version (the
built-in rules), the guard switches, every setting of that direction's scanners, and the
name, path, options and version of each plug-in that runs in that direction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from guard_proxy import __version__
from guard_proxy.config.settings import GuardSettings

HASH_SCHEME = 1


def config_hash(
    settings: GuardSettings, direction: str, plugins: Sequence[tuple[str, str, Any, str]]
) -> str:
    """A hex SHA-256 over a canonical JSON form. ``plugins``: ``(name, path, options, version)``."""
    doc = {
        "scheme": HASH_SCHEME,
        "guard_proxy": __version__,
        "direction": direction,
        "enabled": settings.enabled,
        "fail_mode": settings.fail_mode,
        "scanners": dataclasses.asdict(getattr(settings, direction)),
        "plugins": [list(p) for p in plugins],
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()
