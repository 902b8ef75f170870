"""uvicorn's ``supervisors.Multiprocess`` against ``guard_proxy.cli.supervisor`` on the failures
a supervisor is for (issue 21, item 2). ``python bench/supervisors.py`` (~2 minutes, 2 workers
each) prints a Markdown table and writes ``results/supervisors.json``.

uvicorn runs a probe ASGI app (``uvicorn --workers 2``, its default 5 s health check); ours
runs ``guard-proxy serve`` with ``server.workers: 2`` and a fake ``$NOTIFY_SOCKET`` with
``WATCHDOG_USEC`` = 2 s (the supervisor checks every 1 s, a worker is silent after 2 s). Cases:

* **loop blocked**: a request blocks its worker's event loop for good (a scanner stuck on the
  loop; uvicorn: the probe's ``/block``; ours: the tests' stand-in plug-in, ``inline`` with a
  gate that never opens). Seen: whether that request is ever answered, whether the worker is
  replaced (uvicorn) or ``WATCHDOG=1`` withheld (ours), and after how long.
* **process stopped** (SIGSTOP: the whole worker hung): seconds until it is noticed.
* **killed while loading** (SIGKILL from the app factory / the plug-in factory, as the OOM
  killer ends a worker loading a model): how many workers are started in ``WINDOW`` s, and
  whether the service stops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from guard_proxy_testing.notify import NotifySocket

from procs import BENCH, PY, Proc, free_port, http_request, stop_all

WINDOW = 20.0
"""Seconds each case is watched (a failure not noticed by then is reported as never)."""

PROBE_APP = """
import os, signal, time

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/block":  # a scanner stuck on the event loop
        open(os.environ["PROBE_BLOCKED"], "w").write(str(os.getpid()))
        while True:
            time.sleep(0.01)
    body = str(os.getpid()).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def killed():  # app factory: the worker is killed while it loads
    os.kill(os.getpid(), signal.SIGKILL)


class Killed:  # the same as a guard-proxy plug-in factory
    def __init__(self, options):
        os.kill(os.getpid(), signal.SIGKILL)
"""


def until(check: Any, deadline: float) -> Any:
    """Poll ``check`` every 20 ms until it is truthy or ``deadline`` (monotonic) passes."""
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    return None


def workers_of(proc: Proc) -> set[int]:
    """The worker processes (children, not multiprocessing's resource tracker)."""
    try:
        children = psutil.Process(proc.pid).children()
    except psutil.NoSuchProcess:
        return set()
    out = set()
    for child in children:
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                out.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return out


def answers(url: str, path: str = "/") -> bool:
    try:
        return http_request(url + path, timeout=1.0)[0] == 200
    except OSError:
        return False


def end(proc: Proc) -> None:
    """Stop ``proc``, then SIGKILL any of its workers still there (a blocked one ignores
    SIGTERM, and uvicorn's workers have no parent-death signal)."""
    try:
        left = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    except psutil.NoSuchProcess:  # it ended by itself
        left = set()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    proc.stop()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def fire(url: str, path: str, result: list[Any], body: bytes | None = None) -> threading.Thread:
    """Send one request in a thread; ``result`` gets the status, or the error, when it ends."""

    def run() -> None:
        method = "POST" if body else "GET"
        headers = {"content-type": "application/json"}
        try:
            reply = http_request(
                url + path, method=method, data=body, headers=headers, timeout=WINDOW + 5
            )
            result.append(reply[0])
        except OSError as exc:
            result.append(repr(exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------- uvicorn


def start_uvicorn(work: Path, name: str, target: str, factory: bool = False) -> tuple[Proc, str]:
    port = free_port()
    argv = [PY, "-m", "uvicorn", target, "--workers", "2", "--port", str(port)]
    argv += ["--app-dir", str(work), "--log-level", "info", "--timeout-worker-healthcheck", "5"]
    if factory:
        argv.append("--factory")
    proc = Proc(name, argv, {"PROBE_BLOCKED": str(work / "blocked")})
    return proc, f"http://127.0.0.1:{port}"


def uvicorn_cases(work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    proc, url = start_uvicorn(work, "mp-blocked", "probe:app")
    try:
        until(lambda: answers(url) and len(workers_of(proc)) == 2, time.monotonic() + 30)
        before = workers_of(proc)
        result: list[Any] = []
        start = time.monotonic()
        fire(url, "/block", result)
        blocked = until(lambda: (work / "blocked").exists(), start + 10)
        replaced = until(lambda: workers_of(proc) != before, start + WINDOW)
        out["loop_blocked"] = {
            "blocked_worker_seen": bool(blocked),
            "replaced_after_s": None if replaced is None else round(time.monotonic() - start, 2),
            "blocked_request_answered": bool(result),
            "watched_s": WINDOW,
        }
        # The other worker still answers: the blocked one no longer accepts.
        out["loop_blocked"]["service_answers"] = answers(url)
    finally:
        end(proc)

    proc, url = start_uvicorn(work, "mp-stopped", "probe:app")
    try:
        until(lambda: answers(url) and len(workers_of(proc)) == 2, time.monotonic() + 30)
        victim = min(workers_of(proc))
        start = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        gone = until(lambda: victim not in workers_of(proc), start + WINDOW)
        out["process_stopped"] = {
            "replaced_after_s": None if gone is None else round(time.monotonic() - start, 2)
        }
        if gone is None:
            os.kill(victim, signal.SIGCONT)
    finally:
        end(proc)

    proc, url = start_uvicorn(work, "mp-killed", "probe:killed", factory=True)
    try:
        out["killed_while_loading"] = watch_crash_loop(proc)
    finally:
        end(proc)
    return out


def watch_crash_loop(proc: Proc) -> dict[str, Any]:
    started: set[int] = set()
    start = time.monotonic()
    while time.monotonic() < start + WINDOW and proc.popen.poll() is None:
        started |= workers_of(proc)
        time.sleep(0.01)
    code = proc.popen.poll()
    return {
        "workers_started": len(started),
        "service_stopped": code is not None,
        "exit_code": code,
        "stopped_after_s": round(time.monotonic() - start, 2) if code is not None else None,
        "watched_s": WINDOW,
    }


# ---------------------------------------------------------------------------- ours


def start_ours(
    work: Path, name: str, plugin: dict[str, Any], notify: NotifySocket
) -> tuple[Proc, str]:
    port = free_port()
    config = work / f"{name}.yaml"
    body = {
        "server": {"workers": 2},
        "cache": {"backend": "memory"},
        "guard": {"plugins": [plugin]},
    }
    config.write_text(json.dumps(body))  # JSON is YAML
    env = {
        "PROXY_HOST": "127.0.0.1",
        "PROXY_PORT": str(port),
        "OLLAMA_URL": "http://127.0.0.1:9",
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "2000000",
        "PYTHONPATH": str(work),
    }
    proc = Proc(name, [PY, "-m", "guard_proxy", "serve", "--config", str(config)], env)
    return proc, f"http://127.0.0.1:{port}"


def ready(notify: NotifySocket) -> bool:
    return any(message == "READY=1" for message in notify.seen())


def withheld_after(notify: NotifySocket, start: float) -> float | None:
    """Seconds from ``start`` to the last ``WATCHDOG=1``, once none came for 3 s (else None)."""
    pings = [at for at, message in notify.timed() if message == "WATCHDOG=1"]
    if not pings or time.monotonic() - pings[-1] < 3.0:
        return None
    return round(max(pings[-1] - start, 0.0), 2)


def ours_cases(work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    stand_in = {
        "name": "standin",
        "path": "guard_proxy_testing.standin_scanner:factory",
        "directions": ["input"],
        "options": {"inline": True, "gate": str(work / "never")},
    }
    prompt = json.dumps({"model": "m", "prompt": "hello", "stream": False}).encode()

    notify = NotifySocket(work / "blocked.sock")
    proc, url = start_ours(work, "ours-blocked", stand_in, notify)
    try:
        until(lambda: ready(notify) and answers(url, "/health"), time.monotonic() + 60)
        result: list[Any] = []
        start = time.monotonic()
        fire(url, "/api/generate", result, prompt)
        held = until(lambda: withheld_after(notify, start), start + WINDOW)
        out["loop_blocked"] = {
            "watchdog_withheld_after_s": held,
            "blocked_request_answered": bool(result),
            "watched_s": WINDOW,
        }
    finally:
        end(proc)
        notify.close()

    notify = NotifySocket(work / "stopped.sock")
    proc, url = start_ours(work, "ours-stopped", {**stand_in, "options": {}}, notify)
    try:
        until(lambda: ready(notify) and answers(url, "/health"), time.monotonic() + 60)
        victim = min(workers_of(proc))
        start = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        held = until(lambda: withheld_after(notify, start), start + WINDOW)
        out["process_stopped"] = {"watchdog_withheld_after_s": held}
        os.kill(victim, signal.SIGCONT)
    finally:
        end(proc)
        notify.close()

    notify = NotifySocket(work / "killed.sock")
    killed = {"name": "killed", "path": "probe:Killed"}
    proc, url = start_ours(work, "ours-killed", killed, notify)
    try:
        out["killed_while_loading"] = watch_crash_loop(proc)
    finally:
        end(proc)
        notify.close()
    return out


def table(results: dict[str, Any]) -> str:
    mp, ours = results["uvicorn_multiprocess"], results["guard_proxy_supervisor"]

    def never(value: Any) -> str:
        return f"never in {WINDOW:.0f} s" if value is None else f"{value} s"

    crash_mp, crash_ours = mp["killed_while_loading"], ours["killed_while_loading"]
    rows = [
        ("", f"uvicorn {results['uvicorn']} `Multiprocess`", "guard-proxy supervisor"),
        ("---", "---", "---"),
        (
            "loop blocked: noticed",
            "replaced " + never(mp["loop_blocked"]["replaced_after_s"]),
            "WATCHDOG=1 withheld " + never(ours["loop_blocked"]["watchdog_withheld_after_s"]),
        ),
        (
            "loop blocked: its request answered",
            str(mp["loop_blocked"]["blocked_request_answered"]),
            str(ours["loop_blocked"]["blocked_request_answered"]),
        ),
        (
            "process stopped: noticed",
            "replaced " + never(mp["process_stopped"]["replaced_after_s"]),
            "WATCHDOG=1 withheld " + never(ours["process_stopped"]["watchdog_withheld_after_s"]),
        ),
        (
            f"killed while loading: workers started in {WINDOW:.0f} s",
            str(crash_mp["workers_started"]),
            str(crash_ours["workers_started"]),
        ),
        (
            "killed while loading: service stops",
            never(crash_mp["stopped_after_s"])
            if not crash_mp["service_stopped"]
            else f"after {crash_mp['stopped_after_s']} s, exit {crash_mp['exit_code']}",
            never(crash_ours["stopped_after_s"])
            if not crash_ours["service_stopped"]
            else f"after {crash_ours['stopped_after_s']} s, exit {crash_ours['exit_code']}",
        ),
    ]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main() -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(BENCH / "results" / "supervisors.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-supervisors-") as tmp:
        work = Path(tmp)
        (work / "probe.py").write_text(PROBE_APP)
        try:
            results = {
                "uvicorn": uvicorn.__version__,
                "cpus": os.cpu_count(),
                "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "uvicorn_multiprocess": uvicorn_cases(work),
                "guard_proxy_supervisor": ours_cases(work),
            }
        finally:
            stop_all()
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
