"""Render ``docs/benchmarks.md`` (and PNG plots) from a results file.

Usage: ``python bench/report.py [bench/results/latest.json]``; ``run.py`` calls it after a run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOC = ROOT / "docs" / "benchmarks.md"
PLOT_DIR = BENCH / "results"


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _signed(x: float | None, nd: int = 3) -> str:
    return "–" if x is None else f"{x:+.{nd}f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def render(r: dict[str, Any]) -> str:
    m = r.get("meta", {})
    out = [
        "# Benchmarks",
        "",
        "What the proxy and its verdict cache cost, measured side by side with a direct call to",
        "the same upstream in the same run. Produced by:",
        "",
        "```sh",
        "make -C bench          # = .venv/bin/python bench/run.py --profile",
        "make -C bench lag      # only section 6: bench/run.py --only lag --merge",
        "make -C bench workers  # only section 7: bench/run.py --only workers --merge --profile",
        "```",
        "",
        (
            f"Run {m.get('date', '?')} at commit `{m.get('commit', '?')}` in "
            f"{m.get('duration_s', '?')} s on {m.get('cores', '?')} cores ({m.get('cpu', '?')}), "
            f"Linux {m.get('kernel', '?')}, Python {m.get('python', '?')}; raw figures in "
            "[bench/results/latest.json](../bench/results/latest.json). Load average (1 min) "
            f"{m.get('loadavg_1m_start', '?')} at the start, {m.get('loadavg_1m_end', '?')} at "
            "the end: anything above ~0.5 means other work shared the two cores and inflated "
            "latencies (CPU µs per request is the least affected figure)."
        ),
        "",
        "Set-up: a fast fake Ollama (bench/fake_upstream.py, pure ASGI under uvicorn), a",
        "password-protected `redis-server` and the proxy (`python -m guard_proxy serve`, one",
        "uvicorn worker, configured by env and bench/guard.yaml with every built-in scanner on in",
        "both directions, access log on as deployed), each in its own process on loopback; the",
        "load comes from a fourth process (bench/loadgen.py, aiohttp on uvloop). Concurrency 1",
        "alternates direct and proxied requests one by one (ABBA); concurrency 32 alternates",
        "blocks. Overhead = proxied − direct at the same percentile.",
        "Everything shares two cores, so at concurrency 32 latency is mostly queueing: the proxy's",
        "CPU time per request (measured with psutil) is the figure that predicts its capacity.",
        "The fake upstream's own CPU per request or chunk is shown next to it as a yardstick: it",
        "is what a bare ASGI app under the same uvicorn costs on this machine in the same minute.",
        "",
    ]

    goals = r.get("goals", [])
    if goals:
        out += ["## Goals", ""]
        rows = []
        for g in goals:
            verdict = (
                "–"
                if g["met"] is None
                else ("met" if g["met"] else f"**missed by {_f(g.get('missed_by'))} {g['unit']}**")
            )
            rows.append(
                [
                    g["goal"],
                    f"≤ {_f(g['target'], 1)} {g['unit']}",
                    f"{_f(g['measured'])} {g['unit']}",
                    verdict,
                ]
            )
        out += _table(["goal", "target", "measured", "result"], rows)

    ov = r.get("overhead")
    if ov:
        out += ["## 1. Proxy overhead with a cached verdict", "", ov["request"] + ".", ""]
        rows = []
        for row in ov["rows"]:
            d, p, o = row["direct"], row["proxied"], row["overhead_ms"]
            rows.append(
                [
                    row["backend"],
                    str(row["concurrency"]),
                    f"{_f(d['p50_ms'])} / {_f(d['p99_ms'])}",
                    f"{_f(d['rps'], 0)}",
                    f"{_f(p['p50_ms'])} / {_f(p['p99_ms'])}",
                    f"{_f(p['rps'], 0)}",
                    f"{_signed(o['p50'])} / {_signed(o['p99'])}",
                    f"{_f(row['rps_ratio'], 2)}",
                    "{} / {}".format(
                        _f(row.get("proxy_cpu_us_per_req"), 0),
                        _f(row.get("upstream_cpu_us_per_req"), 0),
                    ),
                ]
            )
        out += _table(
            [
                "backend",
                "conc.",
                "direct p50 / p99 ms",
                "direct req/s",
                "proxied p50 / p99 ms",
                "proxied req/s",
                "overhead p50 / p99 ms",
                "req/s ratio",
                "CPU µs/req proxy / upstream",
            ],
            rows,
        )
        out += [
            "`memory-nolog` is the memory backend with `PROXY_ACCESS_LOG=false`: the difference is",
            "the cost of the JSON access log line.",
            "",
        ]
        if (PLOT_DIR / "overhead.png").exists():
            out += ["![overhead](../bench/results/overhead.png)", ""]

    vd = r.get("verdict")
    if vd:
        out += [
            "## 2. Verdict cost: cache hit vs miss by prompt size",
            "",
            vd["request"] + ". Concurrency 1.",
            "",
        ]
        rows = []
        for row in vd["rows"]:
            d, p, o = row["direct"], row["proxied"], row["overhead_ms"]
            rows.append(
                [
                    f"{row['prompt_bytes'] // 1024} KB",
                    row["backend"],
                    row["verdict"],
                    f"{_f(d['p50_ms'])} / {_f(d['p99_ms'])}",
                    f"{_f(p['p50_ms'])} / {_f(p['p99_ms'])}",
                    f"{_signed(o['p50'])} / {_signed(o['p99'])}",
                    "{} / {}".format(
                        _f(row.get("proxy_cpu_us_per_req"), 0),
                        _f(row.get("upstream_cpu_us_per_req"), 0),
                    ),
                    str(sum(row["errors"].values())),
                ]
            )
        out += _table(
            [
                "prompt",
                "backend",
                "verdict",
                "direct p50 / p99 ms",
                "proxied p50 / p99 ms",
                "overhead p50 / p99 ms",
                "CPU µs/req proxy / upstream",
                "errors",
            ],
            rows,
        )
        if (PLOT_DIR / "verdict.png").exists():
            out += ["![verdict cost](../bench/results/verdict.png)", ""]

    og = r.get("outage")
    if og:
        out += [
            "## 3. Redis outage (backend `auto`)",
            "",
            (
                f"{og['request']}; socket timeout {og['socket_timeout_s']} s, probe interval "
                f"{og['probe_interval_s']} s. Refused = redis-server stopped; frozen = SIGSTOP. "
                "The reference proxy has its own Redis, which stays healthy. Added = (outage "
                "proxy − reference) during the outage minus the same difference while both "
                "were healthy, as p50 latency and as proxy CPU per request. Stall = the first "
                "request after the failure minus the healthy p50."
            ),
            "",
        ]
        rows = []
        for mode in ("healthy", "refused", "frozen"):
            if mode not in og:
                continue
            o = og[mode]
            ref = o.get("reference", {})
            healthy = mode == "healthy"
            rows.append(
                [
                    mode,
                    o.get("active_backend", "?"),
                    f"{_f(o['direct']['p50_ms'])}",
                    f"{_f(o['proxied']['p50_ms'])} / {_f(o['proxied']['p99_ms'])}",
                    f"{_f(ref.get('p50_ms'))} / {_f(ref.get('p99_ms'))}",
                    "{} / {}".format(
                        _f(o.get("proxy_cpu_us_per_req"), 0), _f(ref.get("cpu_us_per_req"), 0)
                    ),
                    "–"
                    if healthy
                    else f"{_signed(o.get('added_p50_ms'))} ms / "
                    f"{_signed(o.get('added_cpu_us'), 0)} µs",
                    "–" if healthy else _f(o.get("first_stall_ms"), 1),
                    "–" if healthy else ", ".join(_f(x, 1) for x in o["first_requests_ms"][:3]),
                    "–"
                    if healthy
                    else f"{_f(o['recovery_s'], 2)}" + ("" if o["recovered"] else " (not back)"),
                ]
            )
        out += _table(
            [
                "Redis",
                "active backend",
                "direct p50 ms",
                "outage proxy p50 / p99 ms",
                "reference p50 / p99 ms",
                "CPU µs/req outage / reference",
                "added p50 / CPU",
                "stall ms",
                "first 3 requests ms",
                "back to redis s",
            ],
            rows,
        )

    st = r.get("streaming")
    if st:
        out += [
            "## 4. Streaming",
            "",
            st["request"] + ". Concurrency 1, interleaved. Per-chunk overhead =",
            "(proxied − direct total time) / chunks; proxy CPU per chunk is the proxy's CPU time",
            "over the proxied streams divided by their chunks. Back to back, the upstream's chunks",
            "coalesce in socket buffers and the proxy reads many per call; 1 ms apart, every chunk",
            "is its own read: the honest per-chunk cost (real models emit tokens ms apart)."
            + _run_note(st.get("meta")),
            "",
        ]
        rows = []
        for row in st["rows"]:
            d, p = row["direct"], row["proxied"]
            rows.append(
                [
                    f"{row['format']}, {row.get('pacing', '')}",
                    f"{_f(d['ttfb_p50_ms'])} / {_f(p['ttfb_p50_ms'])}",
                    f"{_f(d['total_p50_ms'])} / {_f(p['total_p50_ms'])}",
                    f"{_f(d['total_p99_ms'])} / {_f(p['total_p99_ms'])}",
                    "{} / {}".format(
                        _signed(row["per_chunk_overhead_us"]["p50"], 1),
                        _signed(row["per_chunk_overhead_us"]["p99"], 1),
                    ),
                    "{} / {}".format(
                        _f(row.get("proxy_cpu_us_per_chunk"), 1),
                        _f(row.get("upstream_cpu_us_per_chunk"), 1),
                    ),
                    f"{d['events_p50']} / {p['events_p50']}",
                    f"{p['complete']}/{p['n']}",
                ]
            )
        out += _table(
            [
                "format",
                "TTFB p50 ms direct / proxied",
                "total p50 ms direct / proxied",
                "total p99 ms direct / proxied",
                "per-chunk overhead p50 / p99 µs",
                "CPU µs/chunk proxy / upstream",
                "lines/events direct / proxied",
                "complete",
            ],
            rows,
        )

    mm = r.get("memory")
    if mm:
        out += [
            "## 5. Memory",
            "",
            f"Resident set size of the proxy (memory backend), filled with {mm['prompt']}.",
            "",
        ]
        rows = [
            [
                str(x["target"]),
                _f(x.get("entries")),
                _f(x["rss_mb"], 1),
                _f(x.get("delta_mb"), 1),
                _f(x.get("bytes_per_entry")),
                _f(x.get("fill_verdicts_per_s")),
            ]
            for x in mm["rows"]
        ]
        out += _table(
            [
                "target verdicts",
                "entries (/cache/stats)",
                "RSS MB",
                "growth MB",
                "bytes/entry",
                "fill verdicts/s (misses)",
            ],
            rows,
        )

    lg = r.get("lag")
    if lg:
        out += _lag_section(lg)

    wk = r.get("workers")
    if wk:
        out += _workers_section(wk)

    # Hand-written sections: model scanners (bench/model_scanners.py prints its table), the
    # metrics hot path, the workers' supervisor (bench/supervisors.py), then the analysis of
    # the whole run.
    for name in (
        "analysis-models.md",
        "analysis-metrics.md",
        "analysis-supervisors.md",
        "analysis.md",
    ):
        analysis = BENCH / name
        if analysis.exists():
            out += [analysis.read_text().rstrip(), ""]

    # Written by bench/redaction.py --write (issue 26), not by run.py.
    redaction = BENCH / "analysis-redaction.md"
    if redaction.exists():
        out += [redaction.read_text().rstrip(), ""]

    # Measured by its own script (bench/keys_hotpath.py), written up by hand.
    keys = BENCH / "analysis-keys.md"
    if keys.exists():
        out += [keys.read_text().rstrip(), ""]

    profiles = [
        (k, v)
        for k, v in r.items()
        if k.startswith("profile_") and isinstance(v, dict) and "samples" in v
    ]
    if profiles:
        out += ["## Where the proxy spends its time (py-spy)", ""]
        for key, s in profiles:
            label = key.removeprefix("profile_")
            out += [
                f"**{label}** ({s['samples']} samples; full list in "
                f"[bench/results/](../bench/results/)): self time by package: "
                + ", ".join(f"{n} {p}%" for n, p in s["package_self_pct"][:8])
                + ".",
                "",
                "Hottest guard_proxy functions (inclusive): "
                + ", ".join(f"`{n}` {p}%" for n, p in s["guard_proxy_inclusive_pct"][:8])
                + ".",
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


def _run_note(m: dict[str, Any] | None) -> str:
    """For a phase run on its own and merged (``--merge``): when, where and how."""
    if not m:
        return ""
    return (
        f" Run {m.get('date', '?')} at commit `{m.get('commit', '?')}` (`{m.get('command', '')}`), "
        f"load average {m.get('loadavg_1m_start', '?')} → {m.get('loadavg_1m_end', '?')}."
    )


def _lag_section(lg: dict[str, Any]) -> list[str]:
    when = _run_note(lg.get("meta"))
    out = [
        "## 6. Streaming lag: what the hold-back costs a reader",
        "",
        (
            f"{lg['request']}: direct, this proxy, and the same proxy with the stream guard of "
            f"`{lg['reference_rev']}` (the fixed hold-back of the longest window − 1 = 171 "
            "characters; the rest of the code is this checkout's), interleaved "
            "stream by stream. First text = when the first characters of the answer reach the "
            "client (added: minus direct, at the median). Held = characters the upstream had "
            "sent but the client had not yet got at that moment. Final burst = characters that "
            "came with the end of the stream, after the model's last token. CPU = the proxy's "
            "CPU time over these streams per upstream chunk (the request itself included)." + when
        ),
        "",
    ]
    rows = []
    for row in lg["rows"]:
        tag = f"{row['format']}, {row.get('pacing') or str(row['tokens_per_s']) + ' tok/s'}"
        d = row["direct"]
        for name, label in (("proxied", "match-aware"), ("reference", "fixed (reference)")):
            x = row[name]
            rows.append(
                [
                    tag,
                    label,
                    f"{_f(d['first_text_p50_ms'], 1)} / {_f(x['first_text_p50_ms'], 1)}",
                    _signed(x.get("first_text_added_ms"), 1),
                    f"{_f(x['held_at_first_p50'])} (max {_f(x['held_at_first_max'])})",
                    f"{_f(x['final_burst_p50'])} (max {_f(x['final_burst_max'])})",
                    _signed(x.get("total_added_ms"), 1),
                    _f(row["cpu_us_per_chunk"][name], 1),
                    f"{x['complete']}/{x['n']}",
                ]
            )
    out += _table(
        [
            "format",
            "hold-back",
            "first text p50 ms direct / proxied",
            "first text added ms",
            "held at first release, chars p50",
            "final burst, chars p50",
            "end added ms",
            "CPU µs/chunk",
            "complete",
        ],
        rows,
    )
    cpu = lg.get("guard_cpu_us_per_chunk")
    if cpu:
        out += [
            "The stream guard alone, in-process (bench/guard_cpu.py: the same prose through the "
            "default output scanners, thread CPU per `feed`, best of 9), each algorithm run on "
            "this machine in the same minute:",
            "",
        ]
        out += _table(
            ["hold-back", *(f"{k}-char chunks µs" for k in cpu["fixed"])],
            [[label, *(_f(v, 2) for v in cpu[label].values())] for label in cpu],
        )
    if (PLOT_DIR / "lag.png").exists():
        out += ["![streaming lag](../bench/results/lag.png)", ""]
    return out


WORKERS_ANALYSIS = BENCH / "analysis-workers.md"


def _target_label(name: str, wk: dict[str, Any]) -> str:
    if name.startswith("workers-"):
        return f"proxy, workers: {name.removeprefix('workers-')}"
    if name == "haproxy":
        return f"HAProxy → proxy, workers: {wk['haproxy_behind'].removeprefix('workers-')}"
    return "direct (upstream)"


def _cpu_cell(row: dict[str, Any]) -> str:
    """proxy (+ HAProxy) / upstream / load generator / other, µs per request."""
    c = row["cpu_us_per_req"]
    proxy = sum(v for k, v in c.items() if k.startswith("workers-"))
    front = f"{proxy:.0f}" + (f" + {c['haproxy']:.0f}" if c.get("haproxy", 0) >= 10 else "")
    return (
        f"{front} / {c.get('upstream', 0):.0f} / {c.get('loadgen', 0):.0f} / "
        f"{c.get('other', 0):.0f} = {c.get('machine', 0):.0f}"
    )


def _proxy_cores(row: dict[str, Any]) -> str:
    """How many cores the proxy's processes kept busy: req/s times proxy CPU per request."""
    c = row["cpu_us_per_req"]
    proxy = sum(v for k, v in c.items() if k.startswith("workers-"))
    return f"{row['rps'] * proxy / 1e6:.2f}" if proxy >= 10 else "–"


def workers_ratios(wk: dict[str, Any]) -> list[dict[str, Any]]:
    """Per concurrency: throughput ratios of the plain-request rows."""
    out = []
    by = {(x["concurrency"], x["target"]): x for x in wk["rows"] if x["kind"] == "plain"}
    counts = wk["workers"]
    for conc in sorted({c for c, _ in by}):
        direct = by.get((conc, "direct"))
        row: dict[str, Any] = {"concurrency": conc}
        for n in counts:
            x = by.get((conc, f"workers-{n}"))
            if x and direct:
                row[f"w{n}_vs_direct"] = x["rps_vs_direct"]
        hi, lo = by.get((conc, f"workers-{max(counts)}")), by.get((conc, f"workers-{min(counts)}"))
        if hi and lo and hi is not lo:
            row["wmax_vs_w1"] = round(hi["rps"] / lo["rps"], 3)
        lb = by.get((conc, "haproxy"))
        if lb and hi:
            row["haproxy_vs_behind"] = round(lb["rps"] / hi["rps"], 3)
            row["haproxy_added_p50_ms"] = round(lb["p50_ms"] - hi["p50_ms"], 3)
        out.append(row)
    return out


def _workers_section(wk: dict[str, Any]) -> list[str]:
    behind = wk["haproxy_behind"].removeprefix("workers-")
    out = [
        "## 7. Workers and HAProxy: throughput and overhead by concurrency",
        "",
        (
            f"{wk['request']} (and, for time to first byte, {wk['stream_request']}), memory "
            "cache, access log on, `access.trusted_proxies` = 127.0.0.1. Targets: the upstream "
            "directly; the proxy with "
            + " and ".join(f"`server.workers: {n}`" for n in wk["workers"])
            + " (`PROXY_WORKERS`, one listening socket); "
            + wk.get("haproxy_version", "HAProxy").split(" - ")[0].replace(" version", "")
            + f" in front of the proxy with `workers: {behind}` (one `server` line; mode http, "
            "`option forwardfor`, `balance leastconn`, checks on `/ready`, request log on "
            "stdout, as roles/haproxy configures it). At each concurrency the targets take "
            "turns a block at a time (ABBA), so each runs alone on the machine during its "
            "blocks; req/s = requests / time in its blocks. CPU µs per request is every "
            "process's CPU time over the target's blocks divided by its requests (psutil, "
            "read at each block boundary): proxy (+ HAProxy) / upstream / load generator / "
            "other (kernel softirq of loopback traffic and anything else running) = the "
            f"machine's busy time. {wk['cores']} cores; the load generator, the upstream, "
            "HAProxy and every proxy worker share them." + _run_note(wk.get("meta"))
        ),
        "",
    ]
    labels = {x["target"]: _target_label(x["target"], wk) for x in wk["rows"]}
    rows = []
    for x in (x for x in wk["rows"] if x["kind"] == "plain"):
        o = x.get("overhead_ms")
        rows.append(
            [
                str(x["concurrency"]),
                labels[x["target"]],
                f"{_f(x['p50_ms'])} / {_f(x['p99_ms'])}",
                f"{_signed(o['p50'])} / {_signed(o['p99'])}" if o else "–",
                _f(x["rps"], 0),
                _f(x.get("rps_vs_direct"), 2),
                _f(x.get("rps_vs_reference"), 2),
                _cpu_cell(x),
                _proxy_cores(x),
                f"{100 * (x.get('machine_util') or 0):.0f}%",
                str(x["errors"]),
            ]
        )
    out += _table(
        [
            "conc.",
            "target",
            "p50 / p99 ms",
            "overhead p50 / p99 ms",
            "req/s",
            "× direct",
            "× workers: 1",
            "CPU µs/req proxy (+ HAProxy) / upstream / loadgen / other = machine",
            "proxy cores busy",
            "machine busy",
            "errors",
        ],
        rows,
    )
    rows = []
    for x in (x for x in wk["rows"] if x["kind"] == "stream"):
        o = x.get("ttfb_overhead_ms")
        rows.append(
            [
                str(x["concurrency"]),
                labels[x["target"]],
                f"{_f(x.get('ttfb_p50_ms'))} / {_f(x.get('ttfb_p99_ms'))}",
                f"{_signed(o['p50'])} / {_signed(o['p99'])}" if o else "–",
                f"{_f(x['p50_ms'])} / {_f(x['p99_ms'])}",
                _f(x["rps"], 0),
                _f(x.get("rps_vs_reference"), 2),
                _cpu_cell(x),
                f"{x['errors']} / {x['incomplete']}",
            ]
        )
    if rows:
        out += ["Streams (time to first byte = first body byte at the client):", ""]
        out += _table(
            [
                "conc.",
                "target",
                "TTFB p50 / p99 ms",
                "TTFB added p50 / p99 ms",
                "whole stream p50 / p99 ms",
                "streams/s",
                "× workers: 1",
                "CPU µs/stream proxy (+ HAProxy) / upstream / loadgen / other = machine",
                "errors / incomplete",
            ],
            rows,
        )
    ratios = workers_ratios(wk)
    if ratios:
        hi = max(wk["workers"])
        out += ["Throughput ratios (plain requests):", ""]
        out += _table(
            [
                "conc.",
                *(f"workers: {n} ÷ direct" for n in wk["workers"]),
                f"workers: {hi} ÷ workers: {min(wk['workers'])}",
                f"HAProxy → workers: {hi} ÷ workers: {hi}",
                "HAProxy added p50 ms",
            ],
            [
                [
                    str(r["concurrency"]),
                    *(_f(r.get(f"w{n}_vs_direct"), 2) for n in wk["workers"]),
                    _f(r.get("wmax_vs_w1"), 2),
                    _f(r.get("haproxy_vs_behind"), 2),
                    _signed(r.get("haproxy_added_p50_ms")),
                ]
                for r in ratios
            ],
        )
    shares = [
        (x["concurrency"], x["target"], share)
        for x in wk["rows"]
        if x["kind"] == "plain" and x["target"] != "direct"
        for g, share in x.get("process_share", {}).items()
        if len(share) > 2 and g.startswith("workers-")
    ]
    if shares:
        out += [
            "How the proxy's CPU split over its processes (supervisor first, then each worker), "
            "plain requests: "
            + "; ".join(
                f"c={c} {labels[t]}: " + " / ".join(f"{100 * v:.0f}%" for v in sh.values())
                for c, t, sh in shares
            )
            + ".",
            "",
        ]
    if (PLOT_DIR / "workers.png").exists():
        out += ["![workers](../bench/results/workers.png)", ""]
    if WORKERS_ANALYSIS.exists():
        out += [WORKERS_ANALYSIS.read_text().rstrip(), ""]
    return out


def _workers_plot(plt: Any, wk: dict[str, Any]) -> None:
    """Throughput, p50 and p99 by concurrency per target; CPU per request by process at the
    highest concurrency."""
    plain = [x for x in wk["rows"] if x["kind"] == "plain"]
    names = list(dict.fromkeys(x["target"] for x in plain))
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    styles = {"direct": "k-o"}
    for i, name in enumerate(names):
        pts = sorted((x["concurrency"], x) for x in plain if x["target"] == name)
        xs = [c for c, _ in pts]
        label = _target_label(name, wk)
        style = styles.get(name, f"C{i}-o")
        axes[0].plot(xs, [x["rps"] for _, x in pts], style, label=label)
        axes[1].plot(xs, [x["p50_ms"] for _, x in pts], style, label=label)
        axes[2].plot(xs, [x["p99_ms"] for _, x in pts], style, label=label)
    for ax, title in zip(
        axes[:3],
        ("throughput (req/s)", "latency p50 (ms, log)", "latency p99 (ms, log)"),
        strict=True,
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(WORKERS_CONC_TICKS), [str(c) for c in WORKERS_CONC_TICKS])
        ax.set_xlabel("concurrency")
        ax.set_title(title, fontsize=9)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    top = max(x["concurrency"] for x in plain)
    rows = [x for x in plain if x["concurrency"] == top]
    parts = (
        ("proxy", lambda c: sum(v for k, v in c.items() if k.startswith("workers-"))),
        ("HAProxy", lambda c: c.get("haproxy", 0.0)),
        ("upstream", lambda c: c.get("upstream", 0.0)),
        ("load generator", lambda c: c.get("loadgen", 0.0)),
        ("other (kernel, …)", lambda c: max(c.get("other", 0.0), 0.0)),
    )
    ax = axes[3]
    bottom = [0.0] * len(rows)
    for j, (label, get) in enumerate(parts):
        vals = [get(x["cpu_us_per_req"]) for x in rows]
        ax.bar(range(len(rows)), vals, 0.6, bottom=bottom, label=label, color=f"C{j + 4}")
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(
        range(len(rows)),
        [_target_label(x["target"], wk).replace(", ", "\n").replace(" → ", "\n→ ") for x in rows],
        fontsize=6,
    )
    ax.set_title(f"CPU µs per request by process, c={top}", fontsize=9)
    ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(
        f"Proxy workers and HAProxy, cached-verdict requests, {wk['cores']} cores shared",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(PLOT_DIR / "workers.png", dpi=110)
    plt.close(fig)


WORKERS_CONC_TICKS = (1, 8, 32, 64)


def _lag_plot(plt: Any, lg: dict[str, Any]) -> None:
    """Bars for the match-aware hold-back, the fixed one as a reference line per bar; the lag
    panels show the paced rows (back to back, the answer arrives in one read anyway)."""
    metrics = (
        ("first_text_added_ms", "first text added (ms, log)", 20.0),
        ("held_at_first_p50", "held at first release (chars)", None),
        ("final_burst_p50", "final burst (chars)", 32.0),
        ("cpu", "proxy CPU per chunk (µs)", None),
    )
    fig, axes = plt.subplots(1, len(metrics), figsize=(12, 3.4))
    for ax, (key, title, goal) in zip(axes, metrics, strict=True):
        rows = [x for x in lg["rows"] if key == "cpu" or x.get("tokens_per_s")]

        def value(row: dict[str, Any], name: str, key: str = key) -> float:
            v = row["cpu_us_per_chunk"][name] if key == "cpu" else row[name].get(key)
            return float(v or 0)

        xs = list(range(len(rows)))
        floor = 0.1 if key == "first_text_added_ms" else 0.0
        bars = ax.bar(xs, [max(value(x, "proxied"), floor) for x in rows], 0.5, label="match-aware")
        ax.bar_label(bars, labels=[f"{value(x, 'proxied'):g}" for x in rows], fontsize=7)
        ax.hlines(
            [value(x, "reference") for x in rows],
            [i - 0.35 for i in xs],
            [i + 0.35 for i in xs],
            colors="C3",
            linestyles="--",
            label=f"fixed hold-back ({lg['reference_rev']})",
        )
        if goal is not None:
            ax.axhline(goal, ls=":", lw=0.8, color="k", label="goal")
        if floor:
            ax.set_yscale("log")
        labels = [
            f"{x['format']}\n{x['tokens']} tok" + ("" if x.get("tokens_per_s") else ", b2b")
            for x in rows
        ]
        ax.set_xticks(xs, labels, fontsize=7)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7, loc="center right")
    fig.suptitle("Streamed prose, 50 tokens/s, default scanners", fontsize=10)
    fig.tight_layout()
    fig.savefig(PLOT_DIR / "lag.png", dpi=110)
    plt.close(fig)


def plots(r: dict[str, Any]) -> None:
    """PNG plots next to the results; skipped quietly without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    ov = r.get("overhead", {}).get("rows", [])
    if ov:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
        one = [x for x in ov if x["concurrency"] == 1]
        xs = range(len(one))
        left.bar([i - 0.2 for i in xs], [x["overhead_ms"]["p50"] for x in one], 0.4, label="p50")
        left.bar([i + 0.2 for i in xs], [x["overhead_ms"]["p99"] for x in one], 0.4, label="p99")
        left.axhline(0.5, ls="--", lw=0.8, color="C0")
        left.axhline(2.0, ls="--", lw=0.8, color="C1")
        left.set_xticks(list(xs), [x["backend"] for x in one], fontsize=8)
        left.set_ylabel("proxied − direct (ms)")
        left.set_title("Cached-verdict overhead, c=1 (dashed: goals)", fontsize=10)
        left.legend(fontsize=8)
        xs = range(len(ov))
        right.bar(
            [i - 0.2 for i in xs],
            [x.get("proxy_cpu_us_per_req") or 0 for x in ov],
            0.4,
            label="proxy",
        )
        right.bar(
            [i + 0.2 for i in xs],
            [x.get("upstream_cpu_us_per_req") or 0 for x in ov],
            0.4,
            label="bare ASGI upstream",
        )
        right.set_xticks(
            list(xs),
            [f"{x['backend'].replace('memory-nolog', 'no log')}\nc={x['concurrency']}" for x in ov],
            fontsize=7,
        )
        right.set_ylabel("CPU µs per request")
        right.set_title("CPU per request", fontsize=10)
        right.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(PLOT_DIR / "overhead.png", dpi=110)
        plt.close(fig)
    vd = r.get("verdict", {}).get("rows", [])
    if vd:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for backend in ("memory", "redis"):
            for verdict, style in (("hit", "-o"), ("miss", "--s")):
                pts = [
                    (x["prompt_bytes"] / 1024, x["overhead_ms"]["p50"])
                    for x in vd
                    if x["backend"] == backend and x["verdict"] == verdict
                ]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, label=f"{backend} {verdict}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("prompt size (KB)")
        ax.set_ylabel("overhead p50 (ms)")
        ax.set_title("Verdict cost: proxied − direct")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(PLOT_DIR / "verdict.png", dpi=110)
        plt.close(fig)
    if r.get("lag", {}).get("rows"):
        _lag_plot(plt, r["lag"])
    if r.get("workers", {}).get("rows"):
        _workers_plot(plt, r["workers"])


def write(r: dict[str, Any]) -> None:
    plots(r)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(r))
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH / "results" / "latest.json"
    write(json.loads(path.read_text()))
