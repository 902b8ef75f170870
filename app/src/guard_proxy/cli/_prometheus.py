"""Reading ``/metrics``: a small parser for the Prometheus text exposition format."""

from __future__ import annotations

Sample = tuple[str, dict[str, str], float]


def parse(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition: ``(name, labels, value)``; comments skipped."""
    import re

    label = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
    samples: list[Sample] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        labels: dict[str, str] = {}
        if "{" in line:
            name, _, rest = line.partition("{")
            body, _, tail = rest.rpartition("}")
            for m in label.finditer(body):
                labels[m.group(1)] = (
                    m.group(2).replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
                )
        else:
            name, _, tail = line.partition(" ")
        fields = tail.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        samples.append((name.strip(), labels, value))
    return samples


BLOCKS_METRIC = "guard_proxy_blocks_total"


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
