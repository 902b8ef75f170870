"""Small pieces of the proxy without a server: body checks, addresses, sd_notify, metrics."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from guard_proxy_testing.prom import sample

from guard_proxy.config import AccessSettings
from guard_proxy.proxy import bodies
from guard_proxy.proxy.access import AccessMiddleware
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.sdnotify import notify


def test_generate_inputs_collects_prompt_system_suffix() -> None:
    assert bodies.generate_inputs({"prompt": "p", "system": "s", "suffix": "x"}) == ["p", "s", "x"]
    assert bodies.generate_inputs({"prompt": None}) == ["", "", ""]


def test_openai_chat_inputs_collects_text_parts_only() -> None:
    data = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "image_url", "image_url": {"url": "u"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": '{"q":"b"}'}}],
            },
        ]
    }
    texts = [t for t in bodies.openai_chat_inputs(data) if t]
    assert texts == ["a", '{"q":"b"}']


@pytest.mark.parametrize("raw", [b"", b"   ", b"[1]", b"{", b'"text"'])
def test_parse_object_rejects(raw: bytes) -> None:
    with pytest.raises(bodies.BadRequest):
        bodies.parse_object(raw)


def test_stream_flag() -> None:
    assert bodies.stream_flag({}, True) is True
    assert bodies.stream_flag({"stream": None}, False) is False
    with pytest.raises(bodies.BadRequest):
        bodies.stream_flag({"stream": 1}, True)


async def _noop(scope: object, receive: object, send: object) -> None:
    return None


def test_forwarded_client_rightmost_untrusted() -> None:
    mw = AccessMiddleware(_noop, AccessSettings(trusted_proxies=("10.0.0.0/8", "fd00::/8")), 1000)
    scope = {
        "headers": [
            (b"x-forwarded-for", b"198.51.100.7, 10.0.0.2"),
            (b"x-forwarded-for", b"fd00::1"),
        ]
    }
    assert mw._forwarded_client(scope, "10.0.0.1") == "198.51.100.7"
    assert mw._forwarded_client({"headers": []}, "10.0.0.1") == "10.0.0.1"


def test_ipv4_mapped_ipv6_peer_counts_as_ipv4() -> None:
    mw = AccessMiddleware(_noop, AccessSettings(allow=("192.0.2.0/24",)), 1000)
    assert mw._is_allowed("::ffff:192.0.2.9")
    assert not mw._is_allowed("::ffff:198.51.100.1")
    assert not mw._is_allowed("")


def test_notify_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert sock.recv(64) == b"READY=1"
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})


def test_metrics_render_is_prometheus_text() -> None:
    metrics = Metrics()
    metrics.request('/a"b', "GET", 200, 0.002)
    metrics.block("input", ["pii", "secrets"])
    metrics.scan("input", 0.0003)
    text = metrics.render({"hits": 3, "misses": 1, "active_backend": "memory"})
    labels = {"route": '/a"b', "method": "GET", "status": "200"}
    assert sample(text, "guard_proxy_requests_total", **labels) == 1
    assert sample(text, "guard_proxy_blocks_total", scanner="pii", direction="input") == 1
    scan = "guard_proxy_scan_duration_seconds_bucket"
    assert sample(text, scan, direction="input", le="0.00025") == 0
    assert sample(text, scan, direction="input", le="0.0005") == 1
    assert sample(text, scan, direction="input", le="+Inf") == 1
    assert sample(text, "guard_proxy_cache_hits_total") == 3
    assert sample(text, "guard_proxy_cache_active_backend", backend="memory") == 1
    assert sample(text, "guard_proxy_cache_active_backend", backend="redis") == 0
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("#") or line.startswith("guard_proxy_")


def test_the_workers_status_is_merged_from_their_data() -> None:
    from guard_proxy.cli.supervisor import merge_status
    from guard_proxy.proxy.statusline import StatusFacts

    ready = StatusFacts("ready", "cache memory", "upstream ok", 1_200, 3)
    degraded = StatusFacts("DEGRADED", "cache memory (r:6379 timeout)", "upstream ok", 5, 1)
    assert StatusFacts.from_json(ready.to_json()) == ready
    assert StatusFacts.from_json('{"head": 1}') is None
    assert StatusFacts.from_json("STATUS=ready") is None
    bad_count = ready.to_json().replace("1200", '"1,200"')
    assert StatusFacts.from_json(bad_count) is None
    assert merge_status([ready, degraded], 3) == (
        "DEGRADED · cache memory (r:6379 timeout) · upstream ok · "
        "1,205 req, 4 blocked · 2/3 workers"
    )
    assert merge_status([ready], 1) == ready.line() + " · 1/1 workers"
    assert merge_status([], 2) == "starting 2 workers"
