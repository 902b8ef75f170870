"""Merge the Prometheus text expositions of several worker processes into one.

Generic at the text level: it knows no metric of the proxy, only the ``# TYPE`` lines.

* **counter** and **histogram** (and **summary** ``_sum``/``_count``) samples are summed by
  identical name and labels, so ``guard_proxy_requests_total`` counts every worker's requests
  and histogram buckets stay cumulative;
* a **gauge** whose name ends in one of :data:`SUMMED_GAUGE_SUFFIXES` (a count of things now,
  e.g. ``guard_proxy_requests_in_flight``) is summed too;
* every other gauge (and untyped sample) is a per-process state and keeps one sample per
  worker, told apart by a ``worker="<n>"`` label.

Families keep the order of their first appearance; ``# HELP``/``# TYPE`` are written once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["SUMMED_GAUGE_SUFFIXES", "merge"]

SUMMED_GAUGE_SUFFIXES = ("_in_flight",)
_SUMMED_TYPES = ("counter", "histogram", "summary")
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


class _Family:
    __slots__ = ("help", "kind", "samples")

    def __init__(self) -> None:
        self.help: str | None = None
        self.kind: str | None = None
        # series text (name{labels}) -> value; insertion order is output order
        self.samples: dict[str, float] = {}


def _family_of(name: str, families: Mapping[str, _Family]) -> str:
    if name in families:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return name


def _with_worker(series: str, worker: str) -> str:
    label = f'worker="{worker}"'
    if series.endswith("}"):
        head = series[:-1]
        return f"{head},{label}}}" if not head.endswith("{") else f"{head}{label}}}"
    return f"{series}{{{label}}}"


def _summed(family: _Family, name: str) -> bool:
    if family.kind in _SUMMED_TYPES:
        return True
    return family.kind == "gauge" and name.endswith(SUMMED_GAUGE_SUFFIXES)


def _format(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return format(value, ".12g")


def merge(texts: Mapping[str, str]) -> str:
    """One exposition from ``{worker: text}`` (see the module docstring)."""
    families: dict[str, _Family] = {}
    for worker, text in texts.items():
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = families.setdefault(parts[2], _Family())
                    rest = parts[3] if len(parts) > 3 else ""
                    if parts[1] == "HELP" and family.help is None:
                        family.help = rest
                    elif parts[1] == "TYPE" and family.kind is None:
                        family.kind = rest.strip()
                continue
            series, _, value_text = line.rpartition(" ")
            try:
                value = float(value_text)
            except ValueError:
                continue
            series = series.strip()
            name = series.split("{", 1)[0]
            family = families.setdefault(_family_of(name, families), _Family())
            if not _summed(family, name):
                series = _with_worker(series, worker)
            family.samples[series] = family.samples.get(series, 0.0) + value
    out: list[str] = []
    for name, family in families.items():
        if family.help is not None:
            out.append(f"# HELP {name} {family.help}".rstrip())
        if family.kind is not None:
            out.append(f"# TYPE {name} {family.kind}")
        out.extend(f"{series} {_format(value)}" for series, value in family.samples.items())
    return "\n".join(out) + "\n"
