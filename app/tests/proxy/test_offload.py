"""Off-loop scanners through a real proxy: overlap in the model threads, /health answering
meanwhile, load shedding, the scan timeout under both fail modes, the ONNX scanner end to end.

The stand-in plug-in (guard_proxy_testing/standin_scanner.py) waits on a gate file while it "scans",
releasing the GIL like a model does, and writes how many calls run at once, so the test sees
inside the proxy process without timing anything. The proxies run as processes, not in the
test process: a scan the test leaves waiting (the scan timeout's) holds a model thread that
only the end of its process ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from guard_proxy_testing import tiny_model
from guard_proxy_testing.processes import Proxy
from guard_proxy_testing.proxies import INPUT_TERM, StartProxy

STANDIN = "guard_proxy_testing.standin_scanner:factory"


def standin(tmp_path: Path, **guard: Any) -> tuple[dict[str, Any], Path, Path]:
    """A config with the gated stand-in on input, its gate file and its state directory."""
    gate, state = tmp_path / "gate", tmp_path / "state"
    state.mkdir()
    options = {"gate": str(gate), "state": str(state), "word": "flagme"}
    plugin = {"name": "standin", "path": STANDIN, "directions": ["input"], "options": options}
    return {"guard": {"plugins": [plugin], **guard}}, gate, state


def wait_for(what: str, condition: Callable[[], bool], deadline: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it never does."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.01)


def read_int(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def generate(proxy: Proxy, prompt: str, path: str = "/api/generate") -> httpx.Response:
    body: dict[str, Any] = {"model": "llama3.2", "prompt": prompt, "stream": False}
    with proxy.client(timeout=120) as c:
        return c.post(path, json=body)


def test_model_scans_overlap_in_the_threads_and_health_answers_meanwhile(
    proxy_factory: StartProxy, tmp_path: Path
) -> None:
    config, gate, state = standin(tmp_path, model_threads=4, scan_queue=64)
    proxy = proxy_factory(config=config)
    with ThreadPoolExecutor(16) as pool:
        # 16 different prompts: no cache hit, no coalescing.
        futures = [pool.submit(generate, proxy, f"prompt number {i}") for i in range(16)]
        wait_for("4 scans inside the plug-in at once", lambda: read_int(state / "running") == 4)
        # Every model thread is busy and 12 prompts wait: the event loop still answers.
        with proxy.client() as c:
            health = c.get("/health")
        assert health.status_code == 200
        assert not any(f.done() for f in futures)
        gate.touch()
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 16
    assert read_int(state / "peak") == 4  # overlapped, and never more than model_threads


def test_a_full_queue_sheds_with_503_and_retry_after_in_each_route_format(
    proxy_factory: StartProxy, tmp_path: Path
) -> None:
    config, gate, state = standin(tmp_path, model_threads=1, scan_queue=1)
    proxy = proxy_factory(config=config)
    paths = ["/api/generate", "/v1/completions"] * 3
    with ThreadPoolExecutor(6) as pool:
        # One scan runs, one waits in the queue, the other four are refused at once.
        futures = [pool.submit(generate, proxy, f"prompt {i}", p) for i, p in enumerate(paths)]
        wait_for("the first scan running", lambda: read_int(state / "running") == 1)
        wait_for("four requests answered", lambda: sum(f.done() for f in futures) == 4)
        gate.touch()
        responses = [f.result() for f in futures]
    assert sorted(r.status_code for r in responses) == [200, 200, 503, 503, 503, 503]
    for path, response in zip(paths, responses, strict=True):
        if response.status_code != 503:
            continue
        assert response.headers["retry-after"] == "1"
        if path.startswith("/v1/"):
            assert response.json()["error"]["code"] == "guard_busy"
            assert response.json()["error"]["type"] == "api_error"
        else:
            assert response.json()["error"].startswith("guard busy")
    records = proxy.log_records()
    assert sum(r.get("msg") == "guard busy: request shed" for r in records) == 4
    assert not any("prompt" in str(r.get("reason", "")) for r in records)


def test_a_scan_timeout_fails_closed_or_open_keeping_the_other_scanners_findings(
    proxy_factory: StartProxy, tmp_path: Path
) -> None:
    (tmp_path / "closed").mkdir()
    (tmp_path / "open").mkdir()
    closed_config, _, _ = standin(tmp_path / "closed", scan_timeout="100ms")
    closed = proxy_factory(config=closed_config)
    response = generate(closed, "a harmless prompt")
    assert response.status_code == 503
    assert response.json()["error"].startswith("guard unavailable")
    failed = [r for r in closed.log_records() if r.get("msg") == "scanner failed"]
    assert failed and failed[0]["scanner"] == "standin"

    open_config, _, _ = standin(tmp_path / "open", scan_timeout="100ms", fail_mode="open")
    opened = proxy_factory(config=open_config)
    assert generate(opened, "a harmless prompt").status_code == 200
    # The model timed out, but the built-in banned term still blocks.
    blocked = generate(opened, f"say {INPUT_TERM}")
    assert blocked.status_code == 400
    assert blocked.json()["guard"]["scanners"] == ["banned_substrings"]
    # Not cached: the same prompt is scanned (and fails open) again.
    again = generate(opened, "a harmless prompt")
    assert again.headers["x-guard-cache"] == "miss"
    with opened.client() as c:
        metrics = c.get("/metrics").text
    assert 'guard_proxy_scanner_errors_total{direction="input",fail_mode="open"} 3' in metrics
    assert [r["fail_mode"] for r in opened.log_records() if r.get("msg") == "scanner failed"] == [
        "open"
    ] * 3


def test_the_onnx_classifier_blocks_what_the_tiny_model_flags_and_caches_it(
    proxy_factory: StartProxy, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    tiny_model.build(model)
    plugin = {
        "name": "injection-model",
        "path": "guard_proxy.guard.onnx_classifier:factory",
        "options": {"model_dir": str(model), "threshold": 0.9},
    }
    proxy = proxy_factory(config={"guard": {"plugins": [plugin], "model_threads": 2}})
    blocked = generate(proxy, f"my cat is called {tiny_model.FLAGGED}")
    assert blocked.status_code == 400
    assert blocked.json()["guard"]["scanners"] == ["injection-model"]
    assert blocked.headers["x-guard-cache"] == "miss"
    again = generate(proxy, f"my cat is called {tiny_model.FLAGGED}")
    assert again.headers["x-guard-cache"] == "hit"
    assert generate(proxy, "what is the weather today").status_code == 200
    assert generate(proxy, f"{tiny_model.GRADED} cats").status_code == 200  # 0.73 < 0.9


def test_the_messages_of_one_request_are_scanned_at_the_same_time(
    proxy_factory: StartProxy, tmp_path: Path
) -> None:
    config, gate, state = standin(tmp_path, model_threads=4)
    proxy = proxy_factory(config=config)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "user", "content": "second question, flagme"},
    ]
    body = {"model": "llama3.2", "messages": messages, "stream": False}
    with ThreadPoolExecutor(1) as pool, proxy.client(timeout=120) as c:
        future = pool.submit(c.post, "/api/chat", json=body)
        wait_for("3 messages inside the plug-in at once", lambda: read_int(state / "running") == 3)
        gate.touch()
        response = future.result()
    assert response.status_code == 400
    assert response.json()["guard"]["scanners"] == ["standin"]


def test_identical_prompts_in_flight_share_one_model_call(
    proxy_factory: StartProxy, tmp_path: Path
) -> None:
    config, gate, state = standin(tmp_path, model_threads=4)
    proxy = proxy_factory(config=config)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(generate, proxy, "the same prompt") for _ in range(8)]
        wait_for("the first scan running", lambda: read_int(state / "running") == 1)
        wait_for("all 8 requests in the proxy", lambda: _in_flight(proxy) >= 8)
        gate.touch()
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 8
    assert sorted(r.headers["x-guard-cache"] for r in responses) == ["hit"] * 7 + ["miss"]
    assert read_int(state / "peak") == 1


def _in_flight(proxy: Proxy) -> float:
    with proxy.client() as c:
        for line in c.get("/metrics").text.splitlines():
            if line.startswith("guard_proxy_requests_in_flight "):
                return float(line.split()[1])
    return 0.0
