"""Statistics for benchmark samples: percentiles, side-by-side overheads, goal checks and
py-spy profile summaries. Pure functions over the load generator's raw answers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

GOALS = {
    "overhead_p50_ms": 0.5,
    "overhead_p99_ms": 2.0,
    "outage_added_p50_ms": 0.1,
    "socket_timeout_ms": 100.0,
    "chunk_overhead_us": 50.0,
    "rss_100k_mb": 100.0,
    "lag_first_text_added_ms": 20.0,
    "lag_final_burst_chars": 32.0,
}


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(latency_us: list[int], busy_s: float) -> dict[str, Any]:
    """p50/p90/p99/mean/max in ms and requests/s (``n / busy_s``)."""
    v = sorted(latency_us)
    ms = 1000.0
    return {
        "n": len(v),
        "p50_ms": round(pct(v, 50) / ms, 3),
        "p90_ms": round(pct(v, 90) / ms, 3),
        "p99_ms": round(pct(v, 99) / ms, 3),
        "mean_ms": round(sum(v) / len(v) / ms, 3) if v else math.nan,
        "max_ms": round(v[-1] / ms, 3) if v else math.nan,
        "rps": round(len(v) / busy_s, 1) if busy_s else math.nan,
    }


def compare(out: dict[str, Any], proxy_cpu_us: float | None = None) -> dict[str, Any]:
    """Direct vs proxied from one interleaved job: both summaries and their difference."""
    d = summarize(out["latency_us"]["direct"], out["busy_s"]["direct"])
    p = summarize(out["latency_us"]["proxied"], out["busy_s"]["proxied"])
    row: dict[str, Any] = {
        "direct": d,
        "proxied": p,
        "overhead_ms": {
            "p50": round(p["p50_ms"] - d["p50_ms"], 3),
            "p99": round(p["p99_ms"] - d["p99_ms"], 3),
            "mean": round(p["mean_ms"] - d["mean_ms"], 3),
        },
        "rps_ratio": round(p["rps"] / d["rps"], 3) if d["rps"] else math.nan,
        "errors": out["errors"],
        "status": out["status"],
    }
    if proxy_cpu_us is not None:
        row["proxy_cpu_us_per_req"] = round(proxy_cpu_us, 1)
    return row


def line(label: str, row: dict[str, Any]) -> str:
    d, p, o = row["direct"], row["proxied"], row["overhead_ms"]
    return (
        f"{label:32s} direct p50 {d['p50_ms']:.3f} p99 {d['p99_ms']:.3f} {d['rps']:.0f}/s | "
        f"proxied p50 {p['p50_ms']:.3f} p99 {p['p99_ms']:.3f} {p['rps']:.0f}/s | "
        f"overhead p50 {o['p50']:+.3f} p99 {o['p99']:+.3f} ms | "
        f"cpu {row.get('proxy_cpu_us_per_req', '-')} us/req | "
        f"status {row['status']} err {row['errors']}"
    )


def _stream_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ttfb = sorted(s["ttfb_us"] for s in samples)
    total = sorted(s["total_us"] for s in samples)
    events = sorted(s["events"] for s in samples)
    return {
        "n": len(samples),
        "ttfb_p50_ms": round(pct(ttfb, 50) / 1000, 3),
        "ttfb_p99_ms": round(pct(ttfb, 99) / 1000, 3),
        "total_p50_ms": round(pct(total, 50) / 1000, 3),
        "total_p99_ms": round(pct(total, 99) / 1000, 3),
        "events_p50": pct(events, 50),
        "bytes_p50": pct(sorted(s["bytes"] for s in samples), 50),
        "complete": sum(1 for s in samples if s["complete"]),
        "status": sorted({s["status"] for s in samples}),
    }


def stream_compare(out: dict[str, Any], chunks: int) -> dict[str, Any]:
    d = _stream_summary(out["samples"]["direct"])
    p = _stream_summary(out["samples"]["proxied"])
    return {
        "direct": d,
        "proxied": p,
        "ttfb_overhead_ms": {
            "p50": round(p["ttfb_p50_ms"] - d["ttfb_p50_ms"], 3),
            "p99": round(p["ttfb_p99_ms"] - d["ttfb_p99_ms"], 3),
        },
        "total_overhead_ms": {
            "p50": round(p["total_p50_ms"] - d["total_p50_ms"], 3),
            "p99": round(p["total_p99_ms"] - d["total_p99_ms"], 3),
        },
        "per_chunk_overhead_us": {
            "p50": round((p["total_p50_ms"] - d["total_p50_ms"]) * 1000 / chunks, 2),
            "p99": round((p["total_p99_ms"] - d["total_p99_ms"]) * 1000 / chunks, 2),
        },
    }


def stream_line(label: str, row: dict[str, Any]) -> str:
    d, p = row["direct"], row["proxied"]
    return (
        f"{label:32s} ttfb {d['ttfb_p50_ms']:.3f} -> {p['ttfb_p50_ms']:.3f} ms | "
        f"total {d['total_p50_ms']:.3f} -> {p['total_p50_ms']:.3f} ms | "
        f"per chunk {row['per_chunk_overhead_us']['p50']:+.2f} us | "
        f"events {d['events_p50']} -> {p['events_p50']} complete {p['complete']}/{p['n']} | "
        f"cpu {row.get('proxy_cpu_us_per_chunk', '-')} us/chunk"
    )


def find_entries(doc: Any) -> int | None:
    """The number of cached verdicts in a /cache/stats document, wherever it keeps it."""
    if not isinstance(doc, dict):
        return None
    for key in ("entries", "memory_entries", "size", "keys", "count"):
        if isinstance(doc.get(key), int) and not isinstance(doc.get(key), bool):
            return int(doc[key])
    for key in ("memory", "backend", "backends", "cache"):
        found = find_entries(doc.get(key))
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- streaming lag


def _median(values: list[float]) -> float:
    return pct(sorted(values), 50)


def lag_compare(out: dict[str, Any]) -> dict[str, Any]:
    """Per target: medians (and p90) of time to first text, text held at the first release and
    text in the final burst; ``added`` = the target's median minus the direct one."""
    rows: dict[str, Any] = {}
    for name, samples in out["samples"].items():
        ok = [x for x in samples if x["status"] == 200 and x["first_text_us"] is not None]
        first = sorted(x["first_text_us"] / 1000 for x in ok)
        rows[name] = {
            "n": len(samples),
            "complete": sum(1 for x in ok if x["chars"] == x["sent"]),
            "first_text_p50_ms": round(pct(first, 50), 3),
            "first_text_p90_ms": round(pct(first, 90), 3),
            "held_at_first_p50": _median([x["held_at_first"] for x in ok]),
            "held_at_first_max": max((x["held_at_first"] for x in ok), default=None),
            "final_burst_p50": _median([x["final_burst"] for x in ok]),
            "final_burst_max": max((x["final_burst"] for x in ok), default=None),
            "total_p50_ms": round(_median([x["total_us"] / 1000 for x in ok]), 3),
        }
    direct = rows.get("direct", {})
    for name, row in rows.items():
        if name != "direct" and direct:
            row["first_text_added_ms"] = round(
                row["first_text_p50_ms"] - direct["first_text_p50_ms"], 3
            )
            row["total_added_ms"] = round(row["total_p50_ms"] - direct["total_p50_ms"], 3)
    return rows


def lag_line(label: str, row: dict[str, Any]) -> str:
    parts = [label]
    for name in ("proxied", "reference"):
        r = row[name]
        parts.append(
            f"{name}: first text +{r['first_text_added_ms']}ms held {r['held_at_first_p50']} "
            f"burst {r['final_burst_p50']} cpu {row['cpu_us_per_chunk'][name]}us/chunk"
        )
    return " | ".join(parts)


# --------------------------------------------------------------------------- workers


def workers_compare(
    out: dict[str, Any], cores: int, baseline: str = "direct", reference: str | None = None
) -> dict[str, Any]:
    """Per target of one ``blocks`` job: latency (and stream TTFB) percentiles, throughput,
    overhead against ``baseline`` and throughput ratios against ``baseline`` and ``reference``,
    and CPU µs per request of every process group. CPU labels are ``group`` or
    ``group:process``; ``other`` is the machine's busy time that no labelled process took
    (kernel softirq of loopback traffic, anything else running)."""
    rows: dict[str, Any] = {}
    for name, lat in out["latency_us"].items():
        row = summarize(lat, out["busy_s"][name])
        ttfb = sorted(out.get("ttfb_us", {}).get(name, []))
        if ttfb:
            row["ttfb_p50_ms"] = round(pct(ttfb, 50) / 1000, 3)
            row["ttfb_p99_ms"] = round(pct(ttfb, 99) / 1000, 3)
        row["errors"] = out["errors"][name]
        row["incomplete"] = out.get("incomplete", {}).get(name, 0)
        row["blocks"] = out["blocks"][name]
        n = max(row["n"], 1)
        cpu = out["cpu_s"].get(name, {})
        groups: dict[str, float] = {}
        per_process: dict[str, dict[str, float]] = {}
        for label, secs in cpu.items():
            if label in ("machine", "steal"):
                continue
            group, _, process = label.partition(":")
            groups[group] = groups.get(group, 0.0) + secs
            if process:
                per_process.setdefault(group, {})[process] = secs
        machine = cpu.get("machine", 0.0)
        us = {g: round(v * 1e6 / n, 1) for g, v in groups.items()}
        us["other"] = round((machine - sum(groups.values())) * 1e6 / n, 1)
        us["machine"] = round(machine * 1e6 / n, 1)
        row["cpu_us_per_req"] = us
        row["steal_us_per_req"] = round(cpu.get("steal", 0.0) * 1e6 / n, 1)
        busy = out["busy_s"][name]
        row["machine_util"] = round(machine / (busy * cores), 3) if busy else None
        # How one proxy's CPU split over its processes while this target ran (share of the group).
        row["process_share"] = {
            g: {p: round(v / groups[g], 3) for p, v in procs.items()}
            for g, procs in per_process.items()
            if groups.get(g, 0.0) > 0.05 * busy
        }
        rows[name] = row
    base = rows.get(baseline)
    ref = rows.get(reference) if reference else None
    for name, row in rows.items():
        if base and name != baseline:
            row["overhead_ms"] = {
                "p50": round(row["p50_ms"] - base["p50_ms"], 3),
                "p99": round(row["p99_ms"] - base["p99_ms"], 3),
            }
            if "ttfb_p50_ms" in row and "ttfb_p50_ms" in base:
                row["ttfb_overhead_ms"] = {
                    "p50": round(row["ttfb_p50_ms"] - base["ttfb_p50_ms"], 3),
                    "p99": round(row["ttfb_p99_ms"] - base["ttfb_p99_ms"], 3),
                }
            row["rps_vs_direct"] = round(row["rps"] / base["rps"], 3) if base["rps"] else None
        if ref and name not in (baseline, reference):
            row["rps_vs_reference"] = round(row["rps"] / ref["rps"], 3) if ref["rps"] else None
    return rows


def workers_line(label: str, rows: dict[str, Any]) -> str:
    parts = [f"{label:18s}"]
    for name, r in rows.items():
        o = r.get("overhead_ms")
        extra = f" ({o['p50']:+.2f}/{o['p99']:+.2f})" if o else ""
        ttfb = f" ttfb {r['ttfb_p50_ms']:.2f}" if "ttfb_p50_ms" in r else ""
        parts.append(
            f"{name} {r['p50_ms']:.2f}/{r['p99_ms']:.2f}ms{extra} {r['rps']:.0f}/s{ttfb}"
            f" cpu {r['cpu_us_per_req']['machine']:.0f}us err {r['errors']}"
        )
    return " | ".join(parts)


# --------------------------------------------------------------------------- goals


def _goal(
    goal: str, target: float, measured: float | None, unit: str, lower_is_better: bool = True
) -> dict[str, Any]:
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return {"goal": goal, "target": target, "unit": unit, "measured": None, "met": None}
    met = measured <= target if lower_is_better else measured >= target
    row = {"goal": goal, "target": target, "unit": unit, "measured": round(measured, 3), "met": met}
    if not met:
        row["missed_by"] = round(measured - target, 3)
    return row


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Each issue goal against the run's figures (benchmark figures, never test assertions)."""
    out: list[dict[str, Any]] = []
    for row in r.get("overhead", {}).get("rows", []):
        if row["backend"] == "memory-nolog":
            continue
        tag = f"{row['backend']} c={row['concurrency']}"
        out.append(
            _goal(
                f"cached overhead p50 ({tag})",
                GOALS["overhead_p50_ms"],
                row["overhead_ms"]["p50"],
                "ms",
            )
        )
        out.append(
            _goal(
                f"cached overhead p99 ({tag})",
                GOALS["overhead_p99_ms"],
                row["overhead_ms"]["p99"],
                "ms",
            )
        )
    outage = r.get("outage", {})
    for mode in ("refused", "frozen"):
        if mode in outage:
            o = outage[mode]
            out.append(
                _goal(
                    f"Redis {mode}: added p50 latency, breaker open",
                    GOALS["outage_added_p50_ms"],
                    o["added_p50_ms"],
                    "ms",
                )
            )
            out.append(
                _goal(
                    f"Redis {mode}: first-request stall",
                    GOALS["socket_timeout_ms"],
                    o.get("first_stall_ms"),
                    "ms",
                )
            )
    for row in r.get("streaming", {}).get("rows", []):
        tag = f"{row['format']}, {row.get('pacing', '')}"
        if row.get("pacing") == "back-to-back":  # paced totals follow the upstream's timer
            out.append(
                _goal(
                    f"per streamed chunk, added time p50 ({tag})",
                    GOALS["chunk_overhead_us"],
                    row["per_chunk_overhead_us"]["p50"],
                    "us",
                )
            )
        out.append(
            _goal(
                f"per streamed chunk, proxy CPU ({tag})",
                GOALS["chunk_overhead_us"],
                row.get("proxy_cpu_us_per_chunk"),
                "us",
            )
        )
    lag_rows = r.get("lag", {}).get("rows", [])
    for row in lag_rows:
        tag = f"{row['format']}, {row.get('pacing') or str(row['tokens_per_s']) + ' tok/s'}"
        new = row["proxied"]
        cpu = row["cpu_us_per_chunk"]
        if row["tokens"] == max(x["tokens"] for x in lag_rows) or not row.get("tokens_per_s"):
            # Only where both send every chunk as it comes (see phase_lag).
            out.append(
                _goal(
                    f"streamed prose: proxy CPU per chunk, target = fixed hold-back ({tag})",
                    cpu["reference"],
                    cpu["proxied"],
                    "us",
                )
            )
        if not row.get("tokens_per_s") or row["tokens"] != min(x["tokens"] for x in lag_rows):
            continue  # the lag goals: on the paced rows of the usual length
        out.append(
            _goal(
                f"streamed prose: first text added p50 ({tag})",
                GOALS["lag_first_text_added_ms"],
                new.get("first_text_added_ms"),
                "ms",
            )
        )
        out.append(
            _goal(
                f"streamed prose: final burst p50 ({tag})",
                GOALS["lag_final_burst_chars"],
                new.get("final_burst_p50"),
                "chars",
            )
        )
    guard_cpu = r.get("lag", {}).get("guard_cpu_us_per_chunk", {})
    if "fixed" in guard_cpu:
        for size in ("4", "16", "64"):
            out.append(
                _goal(
                    f"stream guard alone: CPU per {size}-char chunk, target = fixed hold-back",
                    guard_cpu["fixed"][size],
                    guard_cpu["match-aware"][size],
                    "us",
                )
            )
    mem = r.get("memory", {}).get("rows", [])
    if len(mem) >= 2:
        last = mem[-1]
        per = last.get("bytes_per_entry")
        out.append(
            _goal(
                "RSS growth for 100k verdicts",
                GOALS["rss_100k_mb"],
                per * 100_000 / 1048576 if per else None,
                "MB",
            )
        )
    return out


# --------------------------------------------------------------------------- profiles

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/bench/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def profile_summary(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function, and self time per package."""
    try:
        lines = raw.read_text(errors="replace").splitlines()
    except OSError as exc:
        return {"error": str(exc)}
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkg: Counter[str] = Counter()
    total = 0
    for ln in lines:
        stack, _, count_s = ln.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = []
        for fr in stack.split(";"):
            m = _FRAME.match(fr)
            if not m or fr.startswith(("process ", "thread ")):
                continue
            frames.append(f"{m['func']} ({_short(m['file'])})")
        if not frames:
            continue
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
        leaf_file = frames[-1].rsplit("(", 1)[1].rstrip(")")
        pkg[_package(leaf_file)] += count

    def share(c: Counter[str]) -> list[list[Any]]:
        return [[k, round(100 * v / total, 1)] for k, v in c.most_common(top)] if total else []

    # guard_proxy frames below the entry points (cli/, __main__ hold ~everything).
    own = Counter(
        {
            k: v
            for k, v in incl.items()
            if "guard_proxy/" in k and "guard_proxy/cli/" not in k and "__main__" not in k
        }
    )
    return {
        "samples": total,
        "self_pct": share(self_c),
        "inclusive_pct": share(incl),
        "guard_proxy_inclusive_pct": share(own),
        "package_self_pct": share(pkg),
    }


def _package(file: str) -> str:
    if file.startswith("guard_proxy/"):
        parts = file.split("/")
        return "/".join(parts[:2]) if len(parts) > 2 else file
    head = file.split("/", 1)[0]
    if head.endswith(".py"):
        return "stdlib:" + head[:-3]
    return head


def profile_text(label: str, s: dict[str, Any]) -> str:
    if "error" in s:
        return f"# profile {label}: {s['error']}\n"
    out = [
        f"# py-spy profile of the proxy: {label} ({s['samples']} samples, idle excluded)",
        "",
    ]
    for key, title in (
        ("package_self_pct", "Self time by package"),
        ("self_pct", "Self time by function (leaf frames)"),
        ("guard_proxy_inclusive_pct", "Inclusive time in guard_proxy functions"),
        ("inclusive_pct", "Inclusive time, all functions"),
    ):
        out.append(f"## {title}")
        out += [f"{pct_:5.1f}%  {name}" for name, pct_ in s[key]]
        out.append("")
    return "\n".join(out)
