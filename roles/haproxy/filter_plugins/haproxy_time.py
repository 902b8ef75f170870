"""HAProxy time values as seconds (roles/haproxy): compares timeouts in assert.yml."""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

# HAProxy's units; a bare number is milliseconds (HAProxy's configuration manual, 2.5).
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME = re.compile(r"^\s*([0-9]+)\s*(us|ms|s|m|h|d)?\s*$")


def haproxy_seconds(value: Any) -> float:
    """``"65m"`` -> 3900.0; an integer or a bare number is milliseconds, as in haproxy.cfg."""
    match = _TIME.match(str(value))
    if not match:
        raise AnsibleFilterError(
            f"haproxy_seconds: {value!r} is no HAProxy time"
            " (a number and one of us, ms, s, m, h, d)"
        )
    return int(match.group(1)) * _UNITS[match.group(2) or "ms"]


class FilterModule:
    """haproxy_seconds."""

    def filters(self) -> dict[str, Any]:
        return {"haproxy_seconds": haproxy_seconds}
