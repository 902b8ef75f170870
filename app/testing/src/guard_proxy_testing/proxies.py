"""Shared by the proxy tests: the banned terms and base config, and body parsers.

The fixtures that start proxies (``proxy_factory``: processes, ``app_factory``: in this
process, ``proxy``, ``client``) live in ``app/tests/proxy/conftest.py``; ``StartProxy`` and
``StartApp`` are their types.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .inproc import InProcessProxy
from .processes import Proxy

INPUT_TERM = "kaboom"
OUTPUT_TERM = "forbidden-term"
MAX_BODY = 65536

# The guard configuration most tests run with: one banned term per direction, so that the
# fake model can be made to *say* the output term without the prompt containing it.
BASE_CONFIG: dict[str, Any] = {
    "guard": {
        "input": {"banned_substrings": {"patterns": [INPUT_TERM]}},
        "output": {"banned_substrings": {"patterns": [OUTPUT_TERM]}},
    },
    "server": {"max_body_bytes": MAX_BODY},
    "cache": {"backend": "memory"},
}

StartProxy = Callable[..., Proxy]
StartApp = Callable[..., InProcessProxy]


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def ndjson(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def sse_events(body: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[5:].strip().decode() for line in body.splitlines() if line.startswith(b"data:")]
