"""The Grafana dashboard and the Prometheus rules query only what a real proxy exports.

A real ``guard-proxy serve`` on the fake Ollama with a real redis-server and client keys on
answers a few requests with a key (a plain one, a cached repeat, a stream, a blocked prompt,
an unknown path; a second key over its requests-per-minute limit), then its ``/metrics`` is
scraped. Every metric name in ``monitoring/grafana/guard-proxy.json``
(panel queries, template variables) and in ``monitoring/prometheus/rules/*.yml`` must be
exported by it; recording-rule names (``level:metric:operation``) must be recorded by the
rules; ``redis_*`` names must be redis_exporter's; ``up`` is Prometheus's own. The dashboard
must be valid provisioning JSON with a query in every panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from guard_proxy_testing.keys import keys_config, new_key, write_keys_file
from guard_proxy_testing.processes import FakeOllama, Proxy, spawn_proxy
from guard_proxy_testing.redis_server import RedisServer

from guard_proxy.cli._prometheus import Sample, parse

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "monitoring" / "grafana" / "guard-proxy.json"
RULES = sorted((REPO / "monitoring" / "prometheus" / "rules").glob("*.yml"))

# What oliver006/redis_exporter v1.45.0 (Debian 12's prometheus-redis-exporter 1.45.0)
# exports under these names, checked in its exporter/exporter.go and exporter/info.go.
REDIS_EXPORTER = {
    "redis_up",
    "redis_instance_info",
    "redis_master_link_up",
    "redis_connected_slaves",
    "redis_connected_clients",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_evicted_keys_total",
}
PROMETHEUS_OWN = {"up"}
# Written by the roles as node_exporter textfiles, not by the proxy
# (roles/redis/tasks/tls.yml: the certificate's notAfter).
TEXTFILES = {"tls_certificate_not_after_timestamp_seconds"}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")
_DURATION = re.compile(r"^\d")


def metric_names(expr: str) -> set[str]:
    """The metric (and recording-rule) names a PromQL expression reads.

    Strings, label matchers, ranges, grouping label lists and Grafana variables are removed
    first; what is left that names something and is not called like a function or is a
    keyword is a metric name.
    """
    text = _VARIABLE.sub(" ", expr)
    text = _STRING.sub('""', text)
    text = _BRACES.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _NAME.finditer(text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS or _DURATION.match(name):
            continue
        names.add(name)
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{x="y{z}",le!="1"}[5m])))'
        " / on (job) group_left () b:rec:rate5m unless c offset 1h > bool 0.5"
        ' and d{instance=~"$instance"} or max(e[${__range}])'
    )
    assert metric_names(expr) == {"a_bucket", "b:rec:rate5m", "c", "d", "e"}
    assert "up" in template_metrics()


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in _panels(_dashboard()) for t in p.get("targets", [])]


def template_metrics() -> set[str]:
    """Metric names in the template variables' ``label_values(metric{...}, label)``."""
    names = set()
    for var in _dashboard()["templating"]["list"]:
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else str(query or "")
        for m in re.finditer(r"label_values\(\s*([a-zA-Z_:][\w:]*)", query):
            names.add(m.group(1))
    return names


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for g in yaml.safe_load(path.read_text())["groups"]
        for rule in g["rules"]
    ]


def test_dashboard_is_provisioning_ready() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "guard-proxy" and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["instance"]["definition"] == 'label_values(up{job="guard-proxy"}, instance)'
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    for question in ("Readiness", "Traffic", "Blocks", "cache", "memory", "Redis", "Streams"):
        assert any(question in title for title in rows), f"no row about {question}: {rows}"
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {panel['title']!r} has an empty query"
            assert metric_names(target["expr"]), f"{panel['title']!r} reads no metric"


def test_dashboard_recording_rules_are_recorded() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    used = {n for expr in dashboard_exprs() for n in metric_names(expr) if ":" in n}
    assert used, "the dashboard reads no recording rule"
    assert used <= recorded, f"not recorded by the rules: {sorted(used - recorded)}"
    for rule in _rules():
        for name in metric_names(rule["expr"]):
            if ":" in name:
                assert name in recorded, f"{rule.get('alert') or rule['record']} reads {name}"


@pytest.fixture(scope="module")
def scraped(
    fake_ollama: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[set[str], set[str], list[Sample]]]:
    """(names with samples, names declared by ``# TYPE``, histograms expanded, the samples)
    of a proxy on a real Redis with client keys on, after some traffic."""
    server = RedisServer().start()
    workdir = tmp_path_factory.mktemp("monitoring-proxy")
    key, tight = new_key(), new_key()
    keys_file = write_keys_file(
        workdir / "keys.yaml",
        {
            "team-a": (key, {"requests_per_minute": 100}),
            "tight": (tight, {"requests_per_minute": 1}),
        },
    )
    config = workdir / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "guard": {"input": {"banned_substrings": {"patterns": ["kaboom"]}}},
                "cache": {"backend": "auto"},
                **keys_config(keys_file),
            }
        )
    )
    env = {"OLLAMA_URL": fake_ollama.url, **server.env()}
    proxy: Proxy | None = None
    try:
        proxy = spawn_proxy(workdir / "proxy.log", env, ["--config", str(config)])
        with proxy.client(headers={"Authorization": f"Bearer {key}"}) as c:
            body = {"model": "llama3.2", "prompt": "why is the sky blue?", "stream": False}
            assert c.post("/api/generate", json=body).status_code == 200
            assert c.post("/api/generate", json=body).status_code == 200
            streamed = {**body, "prompt": "ECHO:a streamed answer", "stream": True}
            assert c.post("/api/generate", json=streamed).status_code == 200
            blocked = {**body, "prompt": "say kaboom"}
            assert c.post("/api/generate", json=blocked).status_code == 400
            assert c.get("/no/such/path").status_code == 404
            assert c.get("/ready").status_code == 200
        with proxy.client(headers={"X-API-Key": tight}) as c:
            assert c.post("/api/generate", json=body).status_code == 200
            assert c.post("/api/generate", json=body).status_code == 429
        text = httpx.get(f"{proxy.url}/metrics", timeout=10).text
    finally:
        if proxy is not None:
            proxy.stop()
        server.close()
    samples = parse(text)
    sampled = {name for name, _, _ in samples}
    declared = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            declared.add(name)
            if kind == "histogram":
                declared |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    yield sampled, declared, samples


Scraped = tuple[set[str], set[str], list[Sample]]


def _check_exported(names: set[str], scraped: Scraped, where: str) -> None:
    sampled, declared, _ = scraped
    ours = {
        n
        for n in names
        if ":" not in n and n not in PROMETHEUS_OWN | TEXTFILES and not n.startswith("redis_")
    }
    missing = sorted(ours - declared)
    assert not missing, f"{where} reads metrics /metrics does not export: {missing}"
    redis = {n for n in names if n.startswith("redis_")}
    assert redis <= REDIS_EXPORTER, (
        f"{where}: not redis_exporter names: {sorted(redis - REDIS_EXPORTER)}"
    )
    assert sampled <= declared  # every sample has its # TYPE line


def test_dashboard_queries_name_exported_metrics(scraped: Scraped) -> None:
    names = {n for expr in dashboard_exprs() for n in metric_names(expr)} | template_metrics()
    _check_exported(names, scraped, "the dashboard")


def test_rules_name_exported_metrics(scraped: Scraped) -> None:
    names = {n for rule in _rules() for n in metric_names(rule["expr"])}
    assert "guard_proxy_cache_degraded" in names and "redis_up" in names
    _check_exported(names, scraped, "the rules")


def test_the_traffic_gave_the_panels_samples(scraped: Scraped) -> None:
    """What the few requests above must have put on the dashboard (not just declared)."""
    sampled, _, _ = scraped
    for name in (
        "guard_proxy_requests_total",
        "guard_proxy_request_duration_seconds_bucket",
        "guard_proxy_stream_first_chunk_seconds_bucket",
        "guard_proxy_stream_duration_seconds_bucket",
        "guard_proxy_blocks_total",
        "guard_proxy_blocked_requests_total",
        "guard_proxy_verdict_duration_seconds_bucket",
        "guard_proxy_cache_level_hits_total",
        "guard_proxy_cache_active_backend",
        "guard_proxy_cache_degraded",
        "guard_proxy_ready",
        "guard_proxy_draining",
        "guard_proxy_requests_in_flight",
        "guard_proxy_key_requests_total",
        "guard_proxy_key_tokens_total",
        "guard_proxy_key_blocked_total",
        "guard_proxy_key_limited_total",
        "guard_proxy_key_limits_shared",
        "guard_proxy_keys_loaded",
    ):
        assert name in sampled, f"{name}: no sample after the test traffic"


def test_the_key_panels_show_what_each_key_did(scraped: Scraped) -> None:
    """The client-key row: team-a's requests, tokens both ways and guard block, tight's 429,
    and the limits counted in Redis (the proxy had it)."""
    _, _, samples = scraped

    def value(name: str, **labels: str) -> float:
        found = [v for n, lab, v in samples if n == name and labels.items() <= lab.items()]
        assert len(found) == 1, f"{name}{labels}: {found}"
        return found[0]

    assert value("guard_proxy_key_requests_total", key="team-a") == 5
    assert value("guard_proxy_key_requests_total", key="tight") == 1
    assert value("guard_proxy_key_tokens_total", key="team-a", direction="in") > 0
    assert value("guard_proxy_key_tokens_total", key="team-a", direction="out") > 0
    assert value("guard_proxy_key_blocked_total", key="team-a") == 1
    assert value("guard_proxy_key_limited_total", key="tight", limit="requests_per_minute") == 1
    assert value("guard_proxy_key_limits_shared") == 1
    assert value("guard_proxy_keys_loaded") == 2
