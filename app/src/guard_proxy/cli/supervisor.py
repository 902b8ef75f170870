"""The supervisor of ``server.workers`` > 1: N worker processes serving one listening socket.

The supervisor owns the socket (systemd's, or bound by ``serve``) and forks N workers; each
runs the single-process server (:func:`guard_proxy.cli.serve.serve_one`) on that socket
with its own event loop, cache facade and guard state, created after the fork. It is the
unit's main process (``NotifyAccess=main``) and speaks for the workers to systemd:

* each worker talks to the supervisor exactly as it would to systemd: ``$NOTIFY_SOCKET``
  is a datagram socket of the supervisor, one per worker, in a private directory (0700)
  that also holds the cache stats snapshots (:mod:`guard_proxy.proxy.workershare`);
* the workers' metrics live in ``$PROMETHEUS_MULTIPROC_DIR`` (made by ``serve`` before
  anything imported prometheus_client, see :mod:`guard_proxy.proxy.metrics`); when a
  worker dies its live gauges are dropped there (``mark_process_dead``), its counters and
  histograms stay in the totals;
* ``READY=1`` goes to systemd once every worker has said ``READY=1`` (it listens);
* ``STATUS=`` is the workers' status merged from the data each sends beside its own line
  (:class:`~guard_proxy.proxy.statusline.StatusFacts`, never parsed from text): the worst
  state, the request and block counts summed, and ``n/N workers``;
* with ``$WATCHDOG_USEC`` the workers get the same interval and ping the supervisor from
  their event loops; the supervisor sends ``WATCHDOG=1`` only while every worker is alive
  and pinged within the interval, so a stuck worker gets the service restarted (until the
  service is ready, a worker still loading counts as alive: systemd watches the start-up
  too, and ``TimeoutStartSec=`` bounds it; a replacement must listen within the interval);
* the supervisor loads no scanner or model (ONNX Runtime starts threads, and a fork keeps
  their locks but not them): each worker loads its guard after the fork; one that cannot
  exits :data:`CONFIG_ERROR` before it listens, which stops the service with that code;
* a worker that dies is logged and replaced (its slot number, the ``worker`` label of its
  metrics, is kept); one that dies :data:`MAX_START_FAILURES` times in a row before it
  listened stops the service (exit 1) rather than looping;
* SIGTERM or SIGINT: ``STOPPING=1``, SIGTERM to every worker (each drains, see
  :mod:`guard_proxy.proxy.drain`), its own copy of the socket closed, exit once all have
  ended. A second SIGINT is passed on,
  which makes the workers stop at once.

Workers live in their own process group (a terminal's Ctrl-C reaches the supervisor only)
and get SIGTERM if the supervisor dies (``PR_SET_PDEATHSIG``).

Why not uvicorn's ``supervisors.Multiprocess`` (measured by ``bench/supervisors.py``,
written up in ``docs/architecture.md``): its health check is a thread answering pings, so a
worker whose event loop is blocked is never noticed; a worker killed while it loads is
restarted for ever (only exit code 3 stops it); its ``Process`` and plain ``uvicorn.Server``
are built inside four of its methods, so our server, slot number and death hook would mean
overriding nearly all of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from guard_proxy.proxy.sdnotify import notify
from guard_proxy.proxy.statusline import FACTS_FIELD, REFRESH, StatusFacts, watchdog_interval
from guard_proxy.proxy.workershare import DIR_ENV, WORKER_ENV, WorkerShare

__all__ = ["CONFIG_ERROR", "MAX_START_FAILURES", "Supervisor", "merge_status"]

logger = logging.getLogger("guard_proxy")

MAX_START_FAILURES = 3
CONFIG_ERROR = 2
"""A worker's exit code before it listened for what no restart mends (its guard does not load)."""
TICK = 0.5
"""Longest wait of the supervisor's loop between two looks at its workers."""
_SD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_RANK = {"DRAINING": 3, "DEGRADED": 2}


def merge_status(facts: list[StatusFacts], workers: int) -> str:
    """One ``STATUS=`` text for the service from its workers' facts (see the module doc)."""
    if not facts:
        return f"starting {workers} workers"
    worst = max(facts, key=lambda f: _RANK.get(f.head, 1))
    merged = dataclasses.replace(
        worst,
        requests=sum(f.requests for f in facts),
        blocked=sum(f.blocked for f in facts),
    )
    return f"{merged.line()} · {len(facts)}/{workers} workers"


class _Slot:
    """One worker place: its notify socket, and the process serving it now."""

    __slots__ = ("failures", "index", "last_ping", "notify", "path", "pid", "ready", "status")

    def __init__(self, index: int, directory: str) -> None:
        self.index = index
        self.path = os.path.join(directory, f"notify-{index}.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.notify.bind(self.path)
        self.notify.setblocking(False)
        self.pid: int | None = None
        self.ready = False
        self.last_ping = 0.0
        self.status: StatusFacts | None = None
        self.failures = 0  # deaths in a row before READY


class Supervisor:
    """Run ``serve_worker`` in ``workers`` forked processes until SIGTERM; see the module doc.

    **Parameters:**

    * **workers** - how many processes (``server.workers``).
    * **sock** - the listening socket every worker serves.
    * **source** - where it came from (``systemd`` or ``bound``), for the log.
    * **serve_worker** - runs one worker in the forked child (loads its guard, then serves)
      and returns its exit code: :data:`CONFIG_ERROR` when the guard does not load.
    * **metrics_dir** - ``$PROMETHEUS_MULTIPROC_DIR``, removed when the supervisor ends.
    """

    def __init__(
        self,
        workers: int,
        sock: socket.socket,
        source: str,
        serve_worker: Callable[[], int],
        metrics_dir: str,
    ) -> None:
        self.workers = workers
        self.metrics_dir = metrics_dir
        self.sock = sock
        self.source = source
        self.serve_worker = serve_worker
        self.address = sock.getsockname()[:2]
        # What systemd gave us is ours; the workers get their own (their supervisor's).
        self.sd_env = {k: os.environ.pop(k) for k in _SD_ENV if k in os.environ}
        self.watchdog_every = watchdog_interval(self.sd_env)
        self.slots: list[_Slot] = []
        self.dir = ""
        self.stopping = False
        self.exit_code = 0
        self._pid = 0
        self._signals: list[int] = []
        self._ready_sent = False
        self._next_ping = 0.0
        self._withheld: set[int] = set()
        self._status_sent = ""
        self._status_at = 0.0

    # ------------------------------------------------------------------ the loop

    def run(self) -> int:
        """Start the workers, supervise them, and return the exit code once all ended."""
        self._pid = os.getpid()
        self.dir = tempfile.mkdtemp(prefix="guard-proxy-")
        selector = selectors.DefaultSelector()
        wake_r, wake_w = socket.socketpair()
        for end in (wake_r, wake_w):
            end.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            selector.register(wake_r, selectors.EVENT_READ, None)
            for index in range(self.workers):
                slot = _Slot(index, self.dir)
                self.slots.append(slot)
                selector.register(slot.notify, selectors.EVENT_READ, slot)
            self._status(force=True)  # "starting N workers"
            for slot in self.slots:
                self._spawn(slot, selector, (wake_r, wake_w))
            while True:
                for key, _ in selector.select(self._timeout()):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            while wake_r.recv(512):
                                pass
                    else:
                        self._receive(key.data)
                self._reap(selector, (wake_r, wake_w))
                while self._signals:
                    self._on_stop_signal(self._signals.pop(0))
                if self.stopping and all(slot.pid is None for slot in self.slots):
                    break
                self._ready()
                self._watchdog()
                self._status()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            selector.close()
            for slot in self.slots:
                slot.notify.close()
            wake_r.close()
            wake_w.close()
            self.sock.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        logger.info("all workers ended", extra={"fields": {"exit_code": self.exit_code}})
        return self.exit_code

    def _timeout(self) -> float:
        if self.watchdog_every is None:
            return TICK
        return max(0.0, min(TICK, self._next_ping - time.monotonic()))

    def _on_signal(self, sig: int, frame: Any) -> None:
        self._signals.append(sig)

    def _on_stop_signal(self, sig: int) -> None:
        if not self.stopping:
            self.stopping = True
            notify("STOPPING=1", self.sd_env)
            logger.info(
                "stopping: draining the workers",
                extra={"fields": {"signal": signal.Signals(sig).name}},
            )
            self._kill(signal.SIGTERM)
            # The workers hold their own copies; without ours a connection made now is
            # refused (bound) or waits for the next service (systemd keeps the socket).
            self.sock.close()
        elif sig == signal.SIGINT:
            self._kill(signal.SIGINT)  # a second Ctrl-C: the workers stop at once

    def _kill(self, sig: int) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, sig)

    # ------------------------------------------------------------------ workers

    def _spawn(self, slot: _Slot, selector: selectors.BaseSelector, keep: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):  # what a dead worker left unread
            while slot.notify.recv(4096):
                pass
        WorkerShare.remove(self.dir, str(slot.index))
        slot.ready, slot.status, slot.last_ping = False, None, time.monotonic()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker; never returns
            self._child(slot, selector, keep)
        slot.pid = pid

    def _child(self, slot: _Slot, selector: selectors.BaseSelector, keep: tuple[Any, ...]) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            os.setpgid(0, 0)
            _die_with_parent(self._pid)
            selector.close()
            for other in self.slots:
                other.notify.close()
            for end in keep:
                end.close()
            os.environ.update(
                {"NOTIFY_SOCKET": slot.path, DIR_ENV: self.dir, WORKER_ENV: str(slot.index)}
            )
            if self.watchdog_every is not None:
                os.environ["WATCHDOG_USEC"] = str(int(self.watchdog_every * 2_000_000))
            code = self.serve_worker()
        except SystemExit as exc:  # uvicorn exits 3 when the start-up fails
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # a worker must never return into the supervisor's loop
            logger.exception("worker failed", extra={"fields": {"worker": slot.index}})
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _receive(self, slot: _Slot) -> None:
        while True:
            try:
                data = slot.notify.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            for line in data.decode(errors="replace").splitlines():
                if line == "READY=1":
                    slot.ready = True
                elif line == "WATCHDOG=1":
                    slot.last_ping = time.monotonic()
                elif line.startswith(f"{FACTS_FIELD}="):
                    slot.status = StatusFacts.from_json(line[len(FACTS_FIELD) + 1 :])

    def _reap(self, selector: selectors.BaseSelector, keep: tuple[Any, ...]) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = None
            _mark_dead(pid, self.metrics_dir)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            slot.failures = 0 if slot.ready else slot.failures + 1
            fields = {"worker": slot.index, "pid": pid, "exit_code": code}
            if code == CONFIG_ERROR and not slot.ready:
                if self.exit_code != CONFIG_ERROR:  # said once, whichever worker is first
                    logger.error(
                        "worker cannot load the guard; stopping the service",
                        extra={"fields": fields},
                    )
                    self.exit_code = CONFIG_ERROR
                    self._signals.append(signal.SIGTERM)
                continue
            if slot.failures >= MAX_START_FAILURES:
                logger.error(
                    "worker keeps failing before it listens; stopping the service",
                    extra={"fields": {**fields, "failures": slot.failures}},
                )
                self.exit_code = 1
                self._signals.append(signal.SIGTERM)
                continue
            logger.warning("worker died; starting a new one", extra={"fields": fields})
            self._spawn(slot, selector, keep)

    # ------------------------------------------------------------------ systemd

    def _ready(self) -> None:
        if self._ready_sent or self.stopping or not all(s.ready for s in self.slots):
            return
        self._ready_sent = True
        host, port = self.address
        logger.info(
            "listening",
            extra={
                "fields": {
                    "host": host,
                    "port": port,
                    "socket": self.source,
                    "workers": self.workers,
                    "pids": [s.pid for s in self.slots],
                }
            },
        )
        notify("READY=1", self.sd_env)

    def _watchdog(self) -> None:
        if self.watchdog_every is None or time.monotonic() < self._next_ping:
            return
        now = time.monotonic()
        self._next_ping = now + self.watchdog_every
        limit = self.watchdog_every * 2
        silent = {
            s.index
            for s in self.slots
            if s.pid is None
            # Until the service is ready a worker loading its models cannot ping yet: its
            # start-up is systemd's TimeoutStartSec= to judge, not the watchdog.
            or ((s.ready or self._ready_sent) and now - s.last_ping > limit)
        }
        for index in silent - self._withheld:
            logger.warning(
                "worker not responding: withholding the watchdog ping",
                extra={"fields": {"worker": index}},
            )
        self._withheld = silent
        if not silent:
            notify("WATCHDOG=1", self.sd_env)

    def _status(self, force: bool = False) -> None:
        if not self.sd_env.get("NOTIFY_SOCKET"):
            return
        facts = [s.status for s in self.slots if s.status is not None and s.pid is not None]
        text = merge_status(facts, self.workers)
        now = time.monotonic()
        if force or text != self._status_sent or now - self._status_at >= REFRESH:
            notify(f"STATUS={text}", self.sd_env)
            self._status_sent, self._status_at = text, now


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """Drop a dead worker's live gauges (in flight, per-worker state) from the metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the unit's KillMode still ends us
        return
    if os.getppid() != parent:  # the supervisor died before we asked
        os._exit(1)
