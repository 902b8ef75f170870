"""Reading ``/metrics`` with prometheus_client's own text-format parser."""

from __future__ import annotations

Sample = tuple[str, dict[str, str], float]

BLOCKS_METRIC = "guard_proxy_blocks_total"


def parse(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition: ``(name, labels, value)``, in order.

    Raises ``ValueError`` on text that is not the exposition format.
    """
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def blocks_by_scanner(samples: list[Sample]) -> dict[str, float]:
    """Blocks since start keyed ``"<direction> <scanner>"``, from :data:`BLOCKS_METRIC`."""
    counts: dict[str, float] = {}
    for name, labels, value in samples:
        if name != BLOCKS_METRIC or "scanner" not in labels:
            continue
        direction = labels.get("direction", "")
        key = f"{direction} {labels['scanner']}".strip()
        counts[key] = counts.get(key, 0.0) + value
    return {k: int(v) if v.is_integer() else v for k, v in counts.items() if v}
