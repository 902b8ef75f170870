"""Merging the workers' Prometheus texts: counters and histograms summed, gauges per worker."""

from __future__ import annotations

from guard_proxy.cli._prometheus import parse
from guard_proxy.proxy.promtext import merge

WORKER = """\
# HELP x_requests_total Requests.
# TYPE x_requests_total counter
x_requests_total{route="/a b",status="200"} {n}
# HELP x_seconds Time.
# TYPE x_seconds histogram
x_seconds_bucket{route="/a",le="0.1"} {n}
x_seconds_bucket{route="/a",le="+Inf"} {n}
x_seconds_sum{route="/a"} 0.25
x_seconds_count{route="/a"} {n}
# HELP x_requests_in_flight Now.
# TYPE x_requests_in_flight gauge
x_requests_in_flight {n}
# HELP x_ready Ready.
# TYPE x_ready gauge
x_ready {n}
# HELP x_backend Backend.
# TYPE x_backend gauge
x_backend{backend="redis"} 1
"""


def test_counters_histograms_and_counts_are_summed_other_gauges_labelled() -> None:
    text = merge({"0": WORKER.replace("{n}", "2"), "1": WORKER.replace("{n}", "3")})
    samples = {(name, tuple(sorted(labels.items()))): value for name, labels, value in parse(text)}
    assert samples[("x_requests_total", (("route", "/a b"), ("status", "200")))] == 5
    assert samples[("x_seconds_bucket", (("le", "+Inf"), ("route", "/a")))] == 5
    assert samples[("x_seconds_sum", (("route", "/a"),))] == 0.5
    assert samples[("x_seconds_count", (("route", "/a"),))] == 5
    assert samples[("x_requests_in_flight", ())] == 5
    assert samples[("x_ready", (("worker", "0"),))] == 2
    assert samples[("x_ready", (("worker", "1"),))] == 3
    assert samples[("x_backend", (("backend", "redis"), ("worker", "1")))] == 1
    assert text.count("# TYPE x_seconds histogram") == 1
    # A family's samples stay together, under their own HELP/TYPE.
    lines = text.splitlines()
    start = lines.index("# TYPE x_ready gauge")
    assert lines[start + 1 : start + 3] == ['x_ready{worker="0"} 2', 'x_ready{worker="1"} 3']
