"""``server.workers`` > 1: a supervisor and N workers on one socket, speaking for them to systemd.

A fake ``$NOTIFY_SOCKET`` plays systemd. ``READY=1`` comes only once every worker listens
(each publishes its metrics before it says so, so the first scrape after ``READY`` sees
every ``worker`` label); ``/metrics`` and ``/cache/stats`` add up every worker's counts
whichever worker a scrape lands on; a killed worker is replaced; SIGTERM ends them all.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from guard_proxy_testing import tiny_model
from guard_proxy_testing.notify import NotifySocket
from guard_proxy_testing.processes import Proxy, assert_serve_config_error, clean_env
from guard_proxy_testing.proxies import StartProxy
from prometheus_client.parser import text_string_to_metric_families

from guard_proxy.cli._prometheus import parse

WAIT = 60.0
TESTS = str(Path(__file__).resolve().parents[1])
STANDIN = "guard_proxy_testing.standin_scanner:factory"


def _metrics(proxy: Proxy) -> list[tuple[str, dict[str, str], float]]:
    reply = httpx.get(f"{proxy.url}/metrics", timeout=WAIT)
    assert reply.status_code == 200
    return parse(reply.text)


def _stats(proxy: Proxy) -> dict[str, Any]:
    reply = httpx.get(f"{proxy.url}/cache/stats", timeout=WAIT)
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


def _parent(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def _until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _generated(proxy: Proxy) -> float:
    return sum(
        value
        for name, labels, value in _metrics(proxy)
        if name == "guard_proxy_requests_total" and labels.get("route") == "/api/generate"
    )


def test_ready_once_both_workers_listen_and_metrics_add_up(
    proxy_factory: StartProxy, notify_socket: NotifySocket
) -> None:
    proxy = proxy_factory(env={"PROXY_WORKERS": "2", "NOTIFY_SOCKET": str(notify_socket.path)})
    ready = notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    assert notify_socket.seen().count("READY=1") == 1
    # Every worker listened (and published) before READY=1.
    started = {
        labels["worker"]
        for name, labels, _ in _metrics(proxy)
        if name == "guard_proxy_start_time_seconds"
    }
    assert started == {"0", "1"}
    stats = _stats(proxy)
    assert stats["workers"] == 2
    pids = {w["pid"] for w in stats["per_worker"]}
    assert len(pids) == 2
    assert all(_parent(pid) == proxy.process.proc.pid for pid in pids)

    requests = 12
    for n in range(requests):  # a new connection each: any worker may take it
        reply = httpx.post(
            f"{proxy.url}/api/generate",
            json={"model": "llama3.2", "prompt": f"hello {n}", "stream": False},
            timeout=WAIT,
        )
        assert reply.status_code == 200
    _until(f"{requests} requests in /metrics", lambda: _generated(proxy) == requests)
    in_flight = [v for n, _, v in _metrics(proxy) if n == "guard_proxy_requests_in_flight"]
    assert in_flight == [0]  # summed over the workers: one sample
    _until(
        "hits + misses of every request",
        lambda: (s := _stats(proxy))["hits"] + s["misses"] >= requests,
    )
    status = notify_socket.wait_for(
        "a STATUS for both workers", lambda m: m.startswith("STATUS=") and "2/2 workers" in m, ready
    )
    assert re.search(r"· [\d,]+ req, 0 blocked · 2/2 workers$", notify_socket.seen()[status])
    assert all(
        r.get("socket") == "bound" for r in proxy.log_records() if r.get("msg") == "listening"
    )


def test_a_killed_worker_is_replaced_and_sigterm_ends_them_all(
    proxy_factory: StartProxy, notify_socket: NotifySocket
) -> None:
    proxy = proxy_factory(env={"PROXY_WORKERS": "2", "NOTIFY_SOCKET": str(notify_socket.path)})
    notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    before = {w["worker"]: w["pid"] for w in _stats(proxy)["per_worker"]}
    os.kill(before["0"], signal.SIGKILL)

    def replaced() -> dict[str, int] | None:
        now = {w["worker"]: w["pid"] for w in _stats(proxy)["per_worker"]}
        return now if len(now) == 2 and now["0"] != before["0"] else None

    after = _until("worker 0 replaced", replaced)
    assert after["1"] == before["1"]
    assert _parent(after["0"]) == proxy.process.proc.pid
    died = _until(
        "the log line of the dead worker",
        lambda: [r for r in proxy.log_records() if r.get("msg", "").startswith("worker died")],
    )
    assert died[0]["worker"] == 0 and died[0]["pid"] == before["0"]
    assert died[0]["exit_code"] == -signal.SIGKILL
    assert httpx.get(f"{proxy.url}/api/version", timeout=WAIT).status_code == 200

    proxy.process.proc.send_signal(signal.SIGTERM)
    assert proxy.process.proc.wait(timeout=WAIT) == 0
    assert "STOPPING=1" in notify_socket.seen()
    for pid in after.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _counted(proxy: Proxy) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of every counter and histogram family in one scrape."""
    text = httpx.get(f"{proxy.url}/metrics", timeout=WAIT).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        if family.type in ("counter", "histogram")
        for sample in family.samples
    }


def test_a_worker_killed_under_traffic_takes_no_count_back(
    proxy_factory: StartProxy, notify_socket: NotifySocket
) -> None:
    proxy = proxy_factory(env={"PROXY_WORKERS": "2", "NOTIFY_SOCKET": str(notify_socket.path)})
    notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    stop = threading.Event()
    sent = [0]

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with contextlib.suppress(httpx.HTTPError):  # the killed worker's connections
                httpx.post(
                    f"{proxy.url}/api/generate",
                    json={"model": "llama3.2", "prompt": f"kill {n}", "stream": n % 2 == 0},
                    timeout=WAIT,
                )
                sent[0] += 1

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        scrapes = [_counted(proxy)]
        _until("traffic on both workers", lambda: sent[0] >= 20)
        before = {w["worker"]: w["pid"] for w in _stats(proxy)["per_worker"]}
        scrapes.append(_counted(proxy))
        os.kill(before["0"], signal.SIGKILL)

        def replaced() -> bool:
            scrapes.append(_counted(proxy))
            now = {w["worker"]: w["pid"] for w in _stats(proxy)["per_worker"]}
            return len(now) == 2 and now["0"] != before["0"]

        _until("worker 0 replaced", replaced)
        settled = sent[0] + 20
        _until("more traffic after the restart", lambda: sent[0] >= settled)
        scrapes.append(_counted(proxy))
    finally:
        stop.set()
        thread.join(WAIT)
    scrapes.append(_counted(proxy))
    # Every series of every scrape is still there, and no smaller, in the next one: the dead
    # worker's counts stay in the totals.
    for earlier, later in itertools.pairwise(scrapes):
        went_down = {k: (v, later.get(k)) for k, v in earlier.items() if later.get(k, -1.0) < v}
        assert went_down == {}

    def generated(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return sum(
            v
            for (name, labels), v in scrape.items()
            if name == "guard_proxy_requests_total" and ("route", "/api/generate") in labels
        )

    assert generated(scrapes[1]) > 0
    assert generated(scrapes[-1]) > generated(scrapes[1])


def test_the_watchdog_is_fed_only_while_every_worker_answers(
    proxy_factory: StartProxy, notify_socket: NotifySocket
) -> None:
    proxy = proxy_factory(
        env={
            "PROXY_WORKERS": "2",
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "400000",
        }
    )
    ready = notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    notify_socket.wait_for("WATCHDOG=1", lambda m: m == "WATCHDOG=1", ready)
    pid = {w["worker"]: w["pid"] for w in _stats(proxy)["per_worker"]}["1"]
    os.kill(pid, signal.SIGSTOP)  # its event loop stops: no pings
    try:
        # Under load the running worker may miss a 400 ms ping too: wait for the stopped one.
        _until(
            "the supervisor to notice worker 1",
            lambda: [
                r
                for r in proxy.log_records()
                if r.get("msg", "").startswith("worker not responding") and r.get("worker") == 1
            ],
        )
        mark = len(notify_socket.seen())
    finally:
        os.kill(pid, signal.SIGCONT)
    notify_socket.wait_for("WATCHDOG=1 again", lambda m: m == "WATCHDOG=1", mark)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _maps_onnxruntime(pid: int) -> bool:
    """Whether ONNX Runtime's native library is mapped into ``pid``: it was imported there."""
    return "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()


def test_scanners_and_models_load_in_the_workers_after_the_fork(
    proxy_factory: StartProxy, notify_socket: NotifySocket, tmp_path: Path
) -> None:
    # ONNX Runtime starts threads when a model loads; a fork after that copies a process
    # whose threads are gone (their locks as they were). The supervisor must load nothing.
    model = tmp_path / "model"
    tiny_model.build(model)
    plugin = {
        "name": "injection-model",
        "path": "guard_proxy.guard.onnx_classifier:factory",
        "options": {"model_dir": str(model), "threshold": 0.9, "threads": 2},
    }
    proxy = proxy_factory(
        config={"guard": {"plugins": [plugin], "model_threads": 1}},
        env={"PROXY_WORKERS": "2", "NOTIFY_SOCKET": str(notify_socket.path)},
    )
    notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    supervisor = proxy.process.proc.pid
    workers = [w["pid"] for w in _stats(proxy)["per_worker"]]
    assert len(workers) == 2
    # The model is there, in every worker, with the threads it started ...
    blocked = httpx.post(
        f"{proxy.url}/api/generate",
        json={
            "model": "llama3.2",
            "prompt": f"my cat is called {tiny_model.FLAGGED}",
            "stream": False,
        },
        timeout=WAIT,
    )
    assert blocked.status_code == 400
    assert blocked.json()["guard"]["scanners"] == ["injection-model"]
    assert all(_maps_onnxruntime(pid) and _threads(pid) > 1 for pid in workers)
    # ... and not in the supervisor, which runs on its one thread.
    assert not _maps_onnxruntime(supervisor)
    assert _threads(supervisor) == 1


def test_workers_loading_their_models_keep_the_watchdog_fed_until_ready(
    proxy_factory: StartProxy, notify_socket: NotifySocket
) -> None:
    # systemd's watchdog runs during start-up too; a worker cannot ping while it loads.
    plugin = {"name": "standin", "path": STANDIN, "directions": ["input"], "options": {"load": 3}}
    proxy = proxy_factory(
        config={"guard": {"plugins": [plugin]}},
        env={
            "PROXY_WORKERS": "2",
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "400000",
            "PYTHONPATH": TESTS,
        },
    )
    ready = notify_socket.wait_for("READY=1", lambda m: m == "READY=1")
    assert "WATCHDOG=1" in notify_socket.seen()[:ready]
    assert not [
        r for r in proxy.log_records() if r.get("msg", "").startswith("worker not responding")
    ]


def test_a_scanner_that_cannot_load_in_the_workers_stops_the_service(tmp_path: Path) -> None:
    assert_serve_config_error(
        tmp_path,
        "server:\n  workers: 2\nguard:\n  plugins:\n    - name: missing\n"
        "      path: no_such_module:build\n",
        {},
        "cannot load the guard",
        "no_such_module",
    )


@pytest.mark.parametrize(
    ("env", "yaml_text", "key", "problem"),
    [
        ({"PROXY_WORKERS": "0"}, "", "server.workers (from PROXY_WORKERS)", "at least 1"),
        ({"PROXY_WORKERS": "many"}, "", "server.workers (from PROXY_WORKERS)", "integer or auto"),
        ({}, "server:\n  workers: 1.5\n", "server.workers", "must be an integer"),
        ({}, "server:\n  workers: lots\n", "server.workers", "integer or auto"),
    ],
)
def test_bad_worker_counts_are_config_errors_naming_the_key(
    tmp_path: Path, env: dict[str, str], yaml_text: str, key: str, problem: str
) -> None:
    assert_serve_config_error(tmp_path, yaml_text, env, key, problem)


def test_auto_is_the_cpu_count(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  workers: auto\n")
    result = subprocess.run(
        [sys.executable, "-m", "guard_proxy", "check-config", "--config", str(config), "--print"],
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert result.returncode == 0, result.stderr
    assert f"  workers: {os.cpu_count()}\n" in result.stdout
