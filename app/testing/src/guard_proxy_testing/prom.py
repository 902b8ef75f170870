"""Reading a ``/metrics`` exposition in tests: samples by name and labels, whatever the
order of the labels or the format of the numbers (prometheus_client's parser)."""

from __future__ import annotations

from guard_proxy.cli._prometheus import parse


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None when absent."""
    for found, found_labels, value in parse(text):
        if found == name and found_labels == labels:
            return float(value)
    return None
