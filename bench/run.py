"""Run every benchmark and write ``bench/results/latest.json`` and ``docs/benchmarks.md``.

Usage: ``python bench/run.py [--quick] [--profile] [--only PHASE,...] [--merge]
[--workers 1,2]`` (or ``make -C bench``; ``make -C bench lag`` / ``workers`` run only the
streaming-lag / workers phase, merged). The workers phase needs ``haproxy`` on PATH.
Starts its own fake upstream, redis-server and proxies (``python -m guard_proxy serve``, one
uvicorn worker, env-configured) on loopback, and drives load from a separate process
(bench/loadgen.py). Every overhead is proxied minus direct, measured interleaved in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import procs
import stats
from procs import BENCH, ROOT, RUN_DIR, LoadGen, Proc, Redis

RESULTS = BENCH / "results"
PHASES = ("overhead", "verdict", "streaming", "lag", "outage", "memory", "workers")
DEFAULT_GUARD = BENCH / "guard-default.yaml"
REFERENCE_REV = "7aff4f6"
"""The last commit whose stream guard had the fixed hold-back (longest window - 1)."""
LAG_TOKENS = 100  # ~380 characters of prose: longer than the old 171-character hold-back
WORKERS_CONCURRENCY = (1, 8, 32, 64)
WORKERS_CHUNKS = 20


def reference_src(rev: str = REFERENCE_REV) -> Path:
    """This checkout's ``app/src`` with ``guard/stream.py`` as it was at ``rev``: the same
    proxy, scanners and releaser with the old algorithm (put it first on PYTHONPATH)."""
    dest = RUN_DIR / f"ref-stream-{rev}"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(
        ROOT / "app" / "src", dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    old = subprocess.run(
        ["git", "show", f"{rev}:app/src/guard_proxy/guard/stream.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    (dest / "guard_proxy" / "guard" / "stream.py").write_bytes(old)
    return dest


class Bench:
    """One benchmark run: shared upstream, Redis and load generator; phases add results."""

    def __init__(self, quick: bool, profile: bool, workers: tuple[int, ...] = (1, 2)) -> None:
        self.quick, self.profile, self.workers = quick, profile, workers
        self.results: dict[str, Any] = {}
        self.upstream, self.upstream_url = procs.start_upstream()
        self.redis = Redis()
        self.redis.start()
        self.load = LoadGen()
        self.proxies: dict[str, tuple[Proc, str]] = {}

    def n(self, full: int) -> int:
        """A sample count cap (a fifth in ``--quick``)."""
        return max(min(full, 10), full // 5) if self.quick else full

    def secs(self, full: float) -> float:
        """A time budget for one measuring job (a quarter in ``--quick``)."""
        return full / 4 if self.quick else full

    def proxy(self, name: str, backend: str, **extra: str) -> tuple[Proc, str]:
        if name not in self.proxies:
            redis = self.redis if backend != "memory" else None
            self.proxies[name] = procs.start_proxy(name, self.upstream_url, backend, redis, extra)
        return self.proxies[name]

    def health(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = procs.http_get(self.proxies[name][1] + "/health")
        return doc

    def interleave(
        self,
        proxy: str,
        request: dict[str, Any],
        n: int,
        concurrency: int,
        warmup: int = 100,
        block: int = 5,
        run: str = "r",
        seconds: float = 6.0,
        reference: str | None = None,
    ) -> dict[str, Any]:
        """Direct vs one proxy, side by side; adds the proxy's CPU time per proxied request.

        ``reference`` names a second proxy interleaved as a third target: its summary and CPU
        time land under ``reference``.
        """
        proc, url = self.proxies[proxy]
        targets = {"direct": self.upstream_url, "proxied": url}
        ref = self.proxies[reference] if reference else None
        if ref:
            targets["reference"] = ref[1]
        ref0 = ref[0].cpu_seconds() if ref else 0.0
        cpu0, up0 = proc.cpu_seconds(), self.upstream.cpu_seconds()
        out = self.load.run(
            {
                "kind": "interleave",
                "targets": targets,
                "request": request,
                "n": n,
                "concurrency": concurrency,
                "warmup": warmup,
                "block": block,
                "run": run,
                "seconds": self.secs(seconds),
            }
        )
        cpu, up = proc.cpu_seconds() - cpu0, self.upstream.cpu_seconds() - up0
        proxied = len(out["latency_us"]["proxied"]) + warmup
        served = sum(len(v) + warmup for v in out["latency_us"].values())
        row = stats.compare(out, proxy_cpu_us=cpu * 1e6 / max(proxied, 1))
        if ref:
            ref_n = len(out["latency_us"]["reference"]) + warmup
            row["reference"] = stats.summarize(
                out["latency_us"]["reference"], out["busy_s"]["reference"]
            )
            row["reference"]["cpu_us_per_req"] = round(
                (ref[0].cpu_seconds() - ref0) * 1e6 / max(ref_n, 1), 1
            )
        # The fake upstream's CPU per request: what a bare ASGI app costs here, right now.
        row["upstream_cpu_us_per_req"] = round(up * 1e6 / max(served, 1), 1)
        return row

    # ------------------------------------------------------------------ 1. proxy overhead

    def phase_overhead(self) -> None:
        rows = []
        small = {"api": "generate", "size": 256, "stream": False}
        self.proxy("memory", "memory")
        self.proxy("redis", "auto")
        self.proxy("memory-nolog", "memory", PROXY_ACCESS_LOG="false")
        for backend in ("memory", "redis", "memory-nolog"):
            for conc in (1, 32):
                row = self.interleave(backend, small, self.n(20000), conc, seconds=7.0)
                row.update(backend=backend, concurrency=conc, prompt_bytes=256)
                rows.append(row)
                print(stats.line(f"overhead {backend} c={conc}", row), flush=True)
        self.results["overhead"] = {
            "request": "POST /api/generate stream=false, 256-char prompt, cached verdicts",
            "active_backend": {
                k: self.health(k)["cache"]["active_backend"] for k in ("memory", "redis")
            },
            "rows": rows,
        }
        if self.profile:
            self.results["profile_overhead"] = self.run_profile(
                "memory",
                "overhead-c32",
                {
                    "kind": "interleave",
                    "targets": {"proxied": self.proxies["memory"][1]},
                    "request": small,
                    "n": self.n(20000),
                    "concurrency": 32,
                    "warmup": 50,
                    "block": 5,
                    "seconds": self.secs(6.0),
                },
            )

    # ------------------------------------------------------------------ 2. verdict cost

    def phase_verdict(self) -> None:
        self.proxy("memory", "memory")
        self.proxy("redis", "auto")
        rows = []
        for size, n in ((1024, 5000), (16 * 1024, 3000), (256 * 1024, 400)):
            for backend in ("memory", "redis"):
                for unique in (False, True):
                    req = {"api": "generate", "size": size, "stream": False, "unique": unique}
                    row = self.interleave(
                        backend,
                        req,
                        self.n(n),
                        1,
                        warmup=10,
                        run=f"v{size}{backend[0]}",
                        seconds=3.5,
                    )
                    row.update(
                        backend=backend, prompt_bytes=size, verdict="miss" if unique else "hit"
                    )
                    rows.append(row)
                    print(
                        stats.line(f"verdict {backend} {size}B {row['verdict']}", row), flush=True
                    )
        self.results["verdict"] = {
            "request": "POST /api/generate stream=false; miss = unique prompt (all scanners run)",
            "rows": rows,
        }
        if self.profile:
            self.results["profile_miss"] = self.run_profile(
                "memory",
                "miss-16k",
                {
                    "kind": "interleave",
                    "targets": {"proxied": self.proxies["memory"][1]},
                    "request": {"api": "generate", "size": 16384, "unique": True},
                    "n": self.n(5000),
                    "concurrency": 1,
                    "warmup": 5,
                    "run": "prof",
                    "seconds": self.secs(5.0),
                },
            )

    # ------------------------------------------------------------------ 4. streaming

    def phase_streaming(self) -> None:
        """500-chunk streams back to back (throughput-bound) and 1 ms apart (one chunk per read)."""
        self.proxy("memory", "memory")
        proc, url = self.proxies["memory"]
        rows = []
        chunks = 500
        for pacing, delay, n, secs in (("back-to-back", 0, 200, 6.0), ("1 ms apart", 1, 4, 8.0)):
            for api in ("generate", "openai"):
                req = {"api": api, "size": 256, "chunks": chunks, "chunk_delay_ms": delay}
                cpu0, up0 = proc.cpu_seconds(), self.upstream.cpu_seconds()
                out = self.load.run(
                    {
                        "kind": "stream",
                        "targets": {"direct": self.upstream_url, "proxied": url},
                        "request": req,
                        "n": self.n(n),
                        "warmup": 1 if delay else 2,
                        "seconds": self.secs(secs),
                    }
                )
                cpu, up = proc.cpu_seconds() - cpu0, self.upstream.cpu_seconds() - up0
                row = stats.stream_compare(out, chunks)
                streams = len(out["samples"]["proxied"]) + (1 if delay else 2)
                row["proxy_cpu_us_per_chunk"] = round(cpu * 1e6 / (streams * chunks), 2)
                row["upstream_cpu_us_per_chunk"] = round(up * 1e6 / (2 * streams * chunks), 2)
                row.update(
                    api=api,
                    format="SSE" if api == "openai" else "NDJSON",
                    chunks=chunks,
                    pacing=pacing,
                )
                rows.append(row)
                print(stats.stream_line(f"stream {row['format']} {pacing}", row), flush=True)
        self.results["streaming"] = {
            "request": f"{chunks}-chunk streams, 256-char prompt; output scanning on",
            "rows": rows,
        }
        if self.profile:
            self.results["profile_stream"] = self.run_profile(
                "memory",
                "stream-ndjson",
                {
                    "kind": "stream",
                    "targets": {"proxied": url},
                    "request": {"api": "generate", "size": 256, "chunks": chunks},
                    "n": self.n(400),
                    "warmup": 0,
                    "seconds": self.secs(5.0),
                },
            )
            self.results["profile_stream_paced"] = self.run_profile(
                "memory",
                "stream-ndjson-paced",
                {
                    "kind": "stream",
                    "targets": {"proxied": url},
                    "request": {
                        "api": "generate",
                        "size": 256,
                        "chunks": chunks,
                        "chunk_delay_ms": 1,
                    },
                    "n": self.n(12),
                    "warmup": 0,
                    "seconds": self.secs(5.0),
                },
            )

    # ------------------------------------------------------------------ 6. streaming lag

    def phase_lag(self) -> None:
        """Paced prose (a ~4-character token every 20 ms: 50 tokens/s) through the default
        scanners, memory cache: direct, this proxy, and the same proxy at ``REFERENCE_REV``
        (the fixed hold-back), interleaved stream by stream."""
        config = {"GUARD_PROXY_CONFIG": str(DEFAULT_GUARD)}
        new, new_url = self.proxy("lag", "memory", **config)
        reference = str(reference_src())
        ref, ref_url = self.proxy("lag-ref", "memory", PYTHONPATH=reference, **config)
        rows = []
        # (api, ms between tokens, tokens, streams per target, seconds): paced as a model
        # streams, for the lag; a long stream, for CPU per chunk (in a short one the fixed
        # hold-back sends nothing for its first ~45 chunks, which flatters its CPU figure);
        # back to back (reads coalesce chunks: the partial searches cover more text).
        plan = (
            ("chat", 20, LAG_TOKENS, 12, 60.0),
            ("openai", 20, LAG_TOKENS, 12, 60.0),
            ("chat", 20, 4 * LAG_TOKENS, 3, 100.0),
            ("chat", 0, LAG_TOKENS, 12, 20.0),
        )
        for api, delay, tokens, n, secs in plan:
            req = {"api": api, "size": 64, "chunks": tokens, "chunk_delay_ms": delay}
            warmup = 1
            cpu0 = {"proxied": new.cpu_seconds(), "reference": ref.cpu_seconds()}
            out = self.load.run(
                {
                    "kind": "lag",
                    "targets": {
                        "direct": self.upstream_url,
                        "proxied": new_url,
                        "reference": ref_url,
                    },
                    "request": req,
                    "n": self.n(n),
                    "warmup": warmup,
                    "seconds": self.secs(secs),
                },
                timeout=400,
            )
            row: dict[str, Any] = stats.lag_compare(out)
            chunks = {k: (len(out["samples"][k]) + warmup) * tokens for k in cpu0}
            row["cpu_us_per_chunk"] = {
                "proxied": round(
                    (new.cpu_seconds() - cpu0["proxied"]) * 1e6 / chunks["proxied"], 2
                ),
                "reference": round(
                    (ref.cpu_seconds() - cpu0["reference"]) * 1e6 / chunks["reference"], 2
                ),
            }
            row.update(
                api=api,
                format="SSE" if api == "openai" else "NDJSON",
                tokens=tokens,
                tokens_per_s=round(1000 / delay) if delay else None,
                pacing=(f"{round(1000 / delay)} tok/s" if delay else "back-to-back")
                + (f", {tokens} tokens" if tokens != LAG_TOKENS else ""),
            )
            rows.append(row)
            print(stats.lag_line(f"lag {row['format']} {row['pacing']}", row), flush=True)
        guard_cpu = {}
        for label, env in (("match-aware", {}), ("fixed", {"PYTHONPATH": reference})):
            done = subprocess.run(
                [sys.executable, str(BENCH / "guard_cpu.py")],
                env={**os.environ, **env},
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
            guard_cpu[label] = json.loads(done.stdout)
        print("guard CPU µs per chunk (4/16/64 chars):", guard_cpu, flush=True)
        self.results["lag"] = {
            "guard_cpu_us_per_chunk": guard_cpu,
            "request": (
                f"{LAG_TOKENS} tokens (one row: {4 * LAG_TOKENS}) of English prose, ~4 "
                "characters each, 20 ms apart (one row: back to back), default scanners, "
                "memory cache"
            ),
            "reference_rev": REFERENCE_REV,
            "reference": f"this checkout with guard/stream.py from {REFERENCE_REV}",
            "rows": rows,
        }

    # ------------------------------------------------------------------ 3. Redis outage

    def phase_outage(self) -> None:
        """One proxy loses its Redis (refused, then frozen) while a reference proxy on a second,
        healthy Redis is measured interleaved with it and with direct calls: the outage's cost
        is the outage proxy minus the reference, against the same difference when both are
        healthy."""
        spare = Redis("redis-ref")
        spare.start()
        _, url = self.proxy("outage", "auto")
        self.proxies["reference"] = procs.start_proxy("reference", self.upstream_url, "auto", spare)
        req = {"api": "generate", "size": 256, "stream": False}
        n = self.n(20000)
        out: dict[str, Any] = {
            "socket_timeout_s": 0.1,
            "probe_interval_s": 1.0,
            "request": "POST /api/generate stream=false, 256-char prompt, c=1; direct, "
            "outage proxy and reference proxy (own healthy Redis) interleaved",
        }

        def measure(warmup: int) -> dict[str, Any]:
            res = self.interleave("outage", req, n, 1, warmup=warmup, reference="reference")
            res["vs_reference_ms"] = round(res["proxied"]["p50_ms"] - res["reference"]["p50_ms"], 3)
            res["vs_reference_cpu_us"] = round(
                res["proxy_cpu_us_per_req"] - res["reference"]["cpu_us_per_req"], 1
            )
            return res

        healthy = out["healthy"] = measure(100)
        healthy["active_backend"] = self.health("outage")["cache"]["active_backend"]
        print(stats.line("outage healthy", healthy), flush=True)

        for mode in ("refused", "frozen"):
            if mode == "refused":
                self.redis.stop()
            else:
                self.redis.freeze()
            first = self.load.run({"kind": "single", "url": url, "request": req, "count": 5})
            res = measure(20)
            res["first_requests_ms"] = [round(us / 1000, 3) for us in first["latency_us"]]
            res["first_status"] = first["status"]
            res["active_backend"] = self.health("outage")["cache"]["active_backend"]
            if mode == "refused":
                self.redis.start()
            else:
                self.redis.thaw()
            back = self.load.run(
                {
                    "kind": "poll",
                    "url": url + "/cache/health",
                    "field": "active_backend",
                    "value": "redis",
                    "interval": 0.01,
                    "max_seconds": 15,
                }
            )
            res["recovery_s"] = round(back["seconds"], 3)
            res["recovered"] = back["reached"]
            res["first_stall_ms"] = round(
                res["first_requests_ms"][0] - healthy["proxied"]["p50_ms"], 3
            )
            # Added latency with the breaker open: (outage - reference) now, minus the same
            # difference when both were healthy. Also as CPU time per request.
            res["added_p50_ms"] = round(res["vs_reference_ms"] - healthy["vs_reference_ms"], 3)
            res["added_cpu_us"] = round(
                res["vs_reference_cpu_us"] - healthy["vs_reference_cpu_us"], 1
            )
            out[mode] = res
            print(
                stats.line(f"outage {mode}", res),
                f"first={res['first_requests_ms'][:2]}ms recovery={res['recovery_s']}s "
                f"added={res['added_p50_ms']}ms cpu {res['added_cpu_us']}us",
                flush=True,
            )
            # Warm up again on the healthy Redis before the next failure.
            self.interleave("outage", req, 50, 1, warmup=10)
        self.results["outage"] = out

    # ------------------------------------------------------------------ 5. memory

    def phase_memory(self) -> None:
        """RSS at 0, 10k and 100k cached verdicts, filled over HTTP: /api/chat requests carrying
        100 distinct user messages each (every message is scanned and cached on its own)."""
        proc, url = self.proxy(
            "rss", "memory", CACHE_MAX_SIZE="250000", CACHE_SWEEP_INTERVAL="3600"
        )
        per = 100
        req = {"api": "chat", "size": 64, "stream": False, "unique": True, "messages": per}
        # Warm every code path, then forget the verdicts: that is the 0-entry baseline.
        self.load.run(
            {
                "kind": "fill",
                "url": url,
                "request": req,
                "count": 3,
                "concurrency": 1,
                "run": "warm",
            }
        )
        status = procs.http_post(url + "/cache/clear", procs.admin_headers("rss"))
        time.sleep(0.3)
        rows = [{"target": 0, "clear_status": status, **self._rss_row(proc, url)}]
        sent = 0
        for target in (10_000, 100_000):
            target = self.n(target) if self.quick else target
            have = rows[-1]["entries"] or 0
            count = max(0, -(-(target - have) // per))
            t = self.load.run(
                {
                    "kind": "fill",
                    "url": url,
                    "request": req,
                    "count": count,
                    "start": sent,
                    "concurrency": 4,
                    "run": "fill",
                },
                timeout=400,
            )
            sent += count
            time.sleep(0.3)
            row = {
                "target": target,
                "requests": sent,
                "fill_verdicts_per_s": round(count * per / t["seconds"]),
                "statuses": t["statuses"],
                **self._rss_row(proc, url),
            }
            rows.append(row)
            print(
                f"memory at {target} verdicts:",
                {k: v for k, v in row.items() if k != "cache_stats"},
                flush=True,
            )
        base = rows[0]["rss_mb"]
        base_entries = rows[0]["entries"] or 0
        for r in rows:
            r["delta_mb"] = round(r["rss_mb"] - base, 1)
            entries = (r.get("entries") or 0) - base_entries
            r["bytes_per_entry"] = (
                round((r["rss_mb"] - base) * 1048576 / entries) if entries else None
            )
        self.results["memory"] = {
            "prompt": f"/api/chat requests of {per} distinct 64-char user messages "
            "(one verdict each)",
            "rows": rows,
        }

    def _rss_row(self, proc: Proc, url: str) -> dict[str, Any]:
        try:
            st = procs.http_get(url + "/cache/stats")
        except (OSError, ValueError) as exc:  # reported, not fatal
            st = {"error": str(exc)}
        return {
            "rss_mb": round(proc.rss_bytes() / 1048576, 1),
            "entries": stats.find_entries(st),
            "cache_stats": st,
        }

    # ------------------------------------------------------------------ 7. workers, HAProxy

    def phase_workers(self) -> None:
        """Direct, the proxy with each worker count, and HAProxy in front of the proxy with the
        most workers, a block at a time per target at concurrency 1, 8, 32 and 64: plain
        requests, then short streams (time to first byte). Every target runs alone on the
        machine during its blocks; CPU time of every process is charged block by block."""
        haproxy_binary = procs.haproxy_binary()  # fails here, with how to install it
        counts = self.workers
        proxies: dict[str, tuple[Proc, str]] = {}
        for n in counts:
            name = f"workers-{n}"
            proxies[name] = self.proxy(
                name,
                "memory",
                PROXY_WORKERS=str(n),
                ACCESS_TRUSTED_PROXIES="127.0.0.1/32",
            )
            self._wait_workers(proxies[name][0], n)
        behind = f"workers-{max(counts)}"
        lb, lb_url = procs.start_haproxy("haproxy", [proxies[behind][1]])
        targets = {"direct": self.upstream_url}
        targets.update({name: url for name, (_, url) in proxies.items()})
        targets["haproxy"] = lb_url
        cpu_pids: dict[str, list[int]] = {"upstream": [self.upstream.pid], "haproxy": [lb.pid]}
        for name, (proc, _) in proxies.items():
            for i, p in enumerate(proc.processes()):
                cpu_pids[f"{name}:{'main' if i == 0 else p.pid}"] = [p.pid]
        plain = {"api": "generate", "size": 256, "stream": False}
        stream = {"api": "generate", "size": 256, "stream": True, "chunks": WORKERS_CHUNKS}
        cores = os.cpu_count() or 1
        rows = []
        for conc in WORKERS_CONCURRENCY:
            for kind, req, secs, block in (
                ("plain", plain, 20.0, max(4, 320 // conc)),
                ("stream", stream, 8.0, max(2, 120 // conc)),
            ):
                budget = self.secs(secs)
                out = self._run_alive(
                    [self.upstream, lb, *(proc for proc, _ in proxies.values())],
                    {
                        "kind": "blocks",
                        "targets": targets,
                        "request": req,
                        "concurrency": conc,
                        "block": block,
                        "warmup": 5,
                        "seconds": budget,
                        "cpu_pids": cpu_pids,
                    },
                    timeout=budget * 4 + 120,
                )
                summary = stats.workers_compare(out, cores, reference="workers-1")
                for target, row in summary.items():
                    rows.append({"concurrency": conc, "kind": kind, "target": target, **row})
                print(stats.workers_line(f"workers {kind} c={conc}", summary), flush=True)
        if self.profile:
            self.results["profile_workers"] = self.run_profile(
                behind,
                f"workers-{max(counts)}-c64",
                {
                    "kind": "blocks",
                    "targets": {behind: proxies[behind][1]},
                    "request": plain,
                    "concurrency": 64,
                    "block": 5,
                    "warmup": 2,
                    "seconds": self.secs(6.0),
                },
                subprocesses=True,
            )
        self.results["workers"] = {
            "request": "POST /api/generate stream=false, 256-char prompt, cached verdict",
            "stream_request": (
                f"POST /api/generate stream=true, 256-char prompt, {WORKERS_CHUNKS} chunks "
                "back to back"
            ),
            "workers": list(counts),
            "haproxy_behind": behind,
            "haproxy_version": subprocess.run(
                [haproxy_binary, "-v"], capture_output=True, text=True, check=False
            ).stdout.splitlines()[0],
            "cores": cores,
            "proxy_processes": {name: len(proc.processes()) for name, (proc, _) in proxies.items()},
            "rows": rows,
        }

    def _run_alive(self, watched: list[Proc], job: dict[str, Any], timeout: float) -> Any:
        """``self.load.run(job)``; if it fails, say which of ``watched`` is gone and why."""
        try:
            return self.load.run(job, timeout=timeout)
        except RuntimeError as exc:
            gone = [
                f"{p.name} (pid {p.pid}) exited with {p.proc.returncode}:\n{p.tail(8)}"
                for p in watched
                if p.proc.poll() is not None
            ]
            if gone:
                raise RuntimeError(f"{exc}\n" + "\n".join(gone)) from exc
            raise

    def _wait_workers(self, proc: Proc, n: int, deadline_s: float = 30.0) -> None:
        """With ``PROXY_WORKERS`` > 1, wait until the supervisor has at least ``n`` child
        processes; fail (never measure one worker as two) if they do not come."""
        if n == 1:
            return
        t0 = time.monotonic()
        while time.monotonic() - t0 < deadline_s:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            if len(proc.processes()) - 1 >= n:
                time.sleep(1.0)  # each worker still loads its guard after it forks
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"{proc.name}: PROXY_WORKERS={n} but {len(proc.processes()) - 1} child processes "
            f"after {deadline_s}s (does this checkout have server.workers?):\n{proc.tail()}"
        )

    # ------------------------------------------------------------------ profiling

    def run_profile(
        self, proxy: str, label: str, job: dict[str, Any], subprocesses: bool = False
    ) -> dict[str, Any]:
        """Sample the proxy with py-spy while ``job`` runs; summarise the hottest frames.
        ``subprocesses``: its worker processes too (``server.workers`` > 1)."""
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not os.path.exists(pyspy):
            return {"error": "py-spy not installed"}
        raw = RUN_DIR / f"profile-{label}.txt"
        with open(RUN_DIR / f"py-spy-{label}.err", "wb") as err:
            spy = subprocess.Popen(
                [
                    pyspy,
                    "record",
                    "--pid",
                    str(self.proxies[proxy][0].pid),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--nonblocking",
                    *(["--subprocesses"] if subprocesses else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        time.sleep(1.0)
        try:
            self.load.run(job)
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(5)
        summary = stats.profile_summary(raw)
        (RESULTS / f"profile-{label}.txt").write_text(stats.profile_text(label, summary))
        return summary

    def close(self) -> None:
        self.load.close()
        procs.stop_all()


def meta(started: float, argv: list[str]) -> dict[str, Any]:
    def cmd(args: list[str]) -> str:
        try:
            return subprocess.run(
                args, check=False, capture_output=True, text=True, timeout=10, cwd=ROOT
            ).stdout.strip()
        except OSError:
            return ""

    import importlib.metadata as md

    versions = {}
    for pkg in (
        "guard-proxy",
        "fastapi",
        "starlette",
        "uvicorn",
        "httpx",
        "aiohttp",
        "redis",
        "hiredis",
        "orjson",
        "uvloop",
        "httptools",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[pkg] = md.version(pkg)
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
        "command": " ".join(["python", "bench/run.py", *argv]),
        "duration_s": round(time.monotonic() - started, 1),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "loadavg_1m_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "redis_server": cmd(["/usr/bin/redis-server", "--version"]),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the samples (smoke run)")
    parser.add_argument("--profile", action="store_true", help="also sample the proxy with py-spy")
    parser.add_argument("--only", default=",".join(PHASES), help="comma-separated phases")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="worker counts for the workers phase (HAProxy goes in front of the largest)",
    )
    parser.add_argument("--output", default=str(RESULTS / "latest.json"))
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other phases' results of --output and replace only those run now",
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    phases = [p for p in args.only.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")

    if "workers" in phases:
        try:
            procs.haproxy_binary()  # before anything runs, not after five minutes of it
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    started = time.monotonic()
    load_start = round(os.getloadavg()[0], 2)
    RUN_DIR.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    bench: Bench | None = None
    try:
        workers = tuple(sorted({int(x) for x in args.workers.split(",") if x}))
        bench = Bench(args.quick, args.profile, workers)
        for phase in PHASES:
            if phase in phases:
                t0 = time.monotonic()
                getattr(bench, f"phase_{phase}")()
                print(f"== {phase} done in {time.monotonic() - t0:.1f}s", flush=True)
        results = bench.results
    finally:
        if bench:
            bench.close()
        else:
            procs.stop_all()
    run_meta = meta(started, argv)
    run_meta["loadavg_1m_start"] = load_start
    if args.merge and Path(args.output).exists():
        merged = json.loads(Path(args.output).read_text())
        for phase in phases:
            if phase in results:
                results[phase]["meta"] = run_meta
        merged.update({k: v for k, v in results.items() if k != "meta"})
        results = merged
    else:
        results["meta"] = run_meta
    results["goals"] = stats.goals(results)
    Path(args.output).write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.output} in {results['meta']['duration_s']}s")
    if not args.no_docs:
        import report

        report.write(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
