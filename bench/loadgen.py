"""The load generator: a separate process that reads JSON-line jobs on stdin and answers each
with one JSON line on stdout (raw latencies in microseconds; statistics are the caller's job).

Jobs (``kind``):
  ``blocks``      the same request (plain or streamed) against several targets at one
                  concurrency, a block at a time per target (ABBA order of blocks); the CPU
                  time of given processes, of this process and of the whole machine is read
                  at every block boundary and charged to the block's target.
  ``interleave``  the same request against several targets, side by side. Concurrency 1
                  alternates targets per request (ABBA order); higher concurrency alternates
                  blocks of ``block`` requests per worker, so drift hits every target alike.
  ``stream``      streamed requests against several targets, interleaved; reports time to
                  first body byte, total time and the number of lines/events received.
  ``lag``         paced prose streams against several targets, interleaved; reports when text
                  arrived: time to first text, text held by the proxy at that moment (from the
                  upstream's ``bench_sent``), and the text that came with the end of the stream.
  ``fill``        ``count`` unique prompts against one target at ``concurrency``, flat out.
  ``poll``        GET ``url`` every ``interval`` s until ``field`` equals ``value`` (bounded).
Only loopback URLs are accepted. Every loop is bounded by a count, and measuring loops also by
``seconds`` (whichever ends first; always an even number of rounds so targets stay paired).
"""

from __future__ import annotations

import asyncio
import string
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import psutil

FILLER = (
    "Please summarise the following notes about the garden, the weather and the river "
    "in plain words for a short report. "
)
_ALPHABET = string.ascii_lowercase


def _tag(i: int) -> str:
    """A counter spelt in letters, so unique prompts never look like phone or card numbers."""
    out = []
    for _ in range(6):
        i, r = divmod(i, 26)
        out.append(_ALPHABET[r])
    return "".join(out)


def prompt(size: int, unique: str | None) -> str:
    """A benign prompt of exactly ``size`` characters; ``unique`` prefixes it to defeat caches."""
    head = f"[{unique}] " if unique else ""
    body = (FILLER * (size // len(FILLER) + 1))[: max(size - len(head), 0)]
    return head + body


def body(req: dict[str, Any], unique: str | None = None) -> bytes:
    """The JSON body of a request spec: ``api`` generate|chat|openai, ``size``, ``stream``."""
    text = prompt(int(req.get("size", 64)), unique)
    api = req.get("api", "generate")
    stream = bool(req.get("stream", False))
    chunks = int(req.get("chunks", 500))
    if api == "generate":
        obj: dict[str, Any] = {"model": "bench", "prompt": text, "stream": stream}
        if stream:
            obj["options"] = {"num_predict": chunks}
    elif api == "chat":
        # ``messages: k`` sends k distinct user messages (each is its own verdict).
        k = int(req.get("messages", 1))
        contents = (
            [text]
            if k == 1
            else [prompt(int(req.get("size", 64)), f"{unique}.{_tag(m)}") for m in range(k)]
        )
        messages = [{"role": "user", "content": c} for c in contents]
        obj = {"model": "bench", "messages": messages, "stream": stream}
        if stream:
            obj["options"] = {"num_predict": chunks}
    else:
        obj = {"model": "bench", "messages": [{"role": "user", "content": text}], "stream": stream}
        if stream:
            obj["max_tokens"] = chunks
    if req.get("chunk_delay_ms"):
        obj["bench_chunk_delay_ms"] = req["chunk_delay_ms"]
    if req.get("prose"):
        obj["bench_prose"] = True
    return orjson.dumps(obj)


PATHS = {"generate": "/api/generate", "chat": "/api/chat", "openai": "/v1/chat/completions"}
HEADERS = {"content-type": "application/json"}


def _check_loopback(url: str) -> str:
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"refusing non-loopback URL {url}")
    return url.rstrip("/")


class Target:
    """One base URL with its own connection pool."""

    def __init__(self, name: str, base: str, limit: int) -> None:
        self.name = name
        self.base = _check_loopback(base)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, force_close=False),
            timeout=aiohttp.ClientTimeout(total=60),
            skip_auto_headers=("User-Agent",),
        )

    async def post(self, path: str, data: bytes) -> tuple[int, int]:
        """One request; returns (latency µs, status)."""
        t0 = time.perf_counter_ns()
        async with self.session.post(self.base + path, data=data, headers=HEADERS) as resp:
            await resp.read()
            status = resp.status
        return (time.perf_counter_ns() - t0) // 1000, status

    async def timed(self, path: str, data: bytes, stream: bool) -> tuple[int, int, int, bool]:
        """One request read to its end; (first body byte µs, total µs, status, complete).
        ``complete`` is whether a stream ended with its last line (always true otherwise)."""
        t0 = time.perf_counter_ns()
        first = 0
        complete = True
        async with self.session.post(self.base + path, data=data, headers=HEADERS) as resp:
            if stream:
                tail = b""
                async for chunk in resp.content.iter_any():
                    if chunk and not first:
                        first = time.perf_counter_ns()
                    tail = (tail + chunk)[-200:]
                complete = b'"done":true' in tail or b"[DONE]" in tail
            else:
                await resp.read()
            status = resp.status
        end = time.perf_counter_ns()
        return ((first or end) - t0) // 1000, (end - t0) // 1000, status, complete


class CpuClock:
    """Cumulative CPU seconds per label (user + system over its processes), this process as
    ``loadgen`` and the whole machine as ``machine`` (all cores' non-idle time)."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.procs = {label: [psutil.Process(p) for p in ps] for label, ps in pids.items()}
        self.procs["loadgen"] = [psutil.Process()]

    def read(self) -> dict[str, float]:
        out = {}
        for label, procs in self.procs.items():
            total = 0.0
            for p in procs:
                try:
                    t = p.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += t.user + t.system
            out[label] = total
        # Linux counts guest time inside user time; steal (the hypervisor's) is not ours.
        m = psutil.cpu_times()._asdict()
        idle = sum(m.get(k, 0.0) for k in ("idle", "iowait", "guest", "guest_nice", "steal"))
        out["machine"] = sum(m.values()) - idle
        out["steal"] = m.get("steal", 0.0)
        return out


class Uniques:
    """Unique-prompt counter shared by all targets of a job (each request gets a fresh tag)."""

    def __init__(self, run: str) -> None:
        self.run, self.i = run, 0

    def next(self) -> str:
        self.i += 1
        return f"{self.run}-{_tag(self.i)}"


async def _interleave(job: dict[str, Any]) -> dict[str, Any]:
    conc = int(job.get("concurrency", 1))
    req = job["request"]
    path = PATHS[req.get("api", "generate")]
    targets = [Target(n, u, conc) for n, u in job["targets"].items()]
    uniq = Uniques(job.get("run", "r"))
    unique = bool(req.get("unique", False))
    fixed = body(req)
    lat: dict[str, list[int]] = {t.name: [] for t in targets}
    bad: dict[str, int] = {t.name: 0 for t in targets}
    busy: dict[str, float] = {t.name: 0.0 for t in targets}
    first_status: dict[str, int] = {}
    try:
        # Warm-up: open connections, fill caches, JIT-free paths hot. Not recorded.
        for _ in range(int(job.get("warmup", 50))):
            for t in targets:
                await t.post(path, fixed if not unique else body(req, uniq.next()))
        n = int(job["n"])
        budget = float(job.get("seconds", 1e9))
        t_end = time.perf_counter() + budget
        if conc == 1:
            for i in range(n):
                if i % 2 == 0 and time.perf_counter() > t_end:
                    break
                order = targets if i % 2 == 0 else targets[::-1]
                for t in order:
                    data = fixed if not unique else body(req, uniq.next())
                    us, status = await t.post(path, data)
                    first_status.setdefault(t.name, status)
                    lat[t.name].append(us)
                    busy[t.name] += us / 1e6
                    if status != 200:
                        bad[t.name] += 1
        else:
            block = int(job.get("block", 20))
            rounds = max(1, n // (block * conc))

            async def worker(t: Target, datas: list[bytes]) -> None:
                for data in datas:
                    us, status = await t.post(path, data)
                    first_status.setdefault(t.name, status)
                    lat[t.name].append(us)
                    if status != 200:
                        bad[t.name] += 1

            for r in range(rounds):
                if r % 2 == 0 and r and time.perf_counter() > t_end:
                    break
                order = targets if r % 2 == 0 else targets[::-1]
                for t in order:
                    datas = [
                        [fixed if not unique else body(req, uniq.next()) for _ in range(block)]
                        for _ in range(conc)
                    ]
                    t0 = time.perf_counter()
                    await asyncio.gather(*(worker(t, d) for d in datas))
                    busy[t.name] += time.perf_counter() - t0
    finally:
        for t in targets:
            await t.session.close()
    return {
        "latency_us": lat,
        "errors": bad,
        "status": first_status,
        "busy_s": busy,
    }


async def _blocks(job: dict[str, Any]) -> dict[str, Any]:
    conc = int(job.get("concurrency", 1))
    req = job["request"]
    stream = bool(req.get("stream", False))
    path = PATHS[req.get("api", "generate")]
    data = body(req)
    targets = [Target(n, u, conc) for n, u in job["targets"].items()]
    names = [t.name for t in targets]
    total: dict[str, list[int]] = {n: [] for n in names}
    ttfb: dict[str, list[int]] = {n: [] for n in names}
    busy = dict.fromkeys(names, 0.0)
    blocks = dict.fromkeys(names, 0)
    bad = dict.fromkeys(names, 0)
    incomplete = dict.fromkeys(names, 0)
    status: dict[str, int] = {}
    clock = CpuClock({k: list(v) for k, v in job.get("cpu_pids", {}).items()})
    cpu: dict[str, dict[str, float]] = {n: {} for n in names}

    async def worker(t: Target, count: int, record: bool) -> None:
        for _ in range(count):
            first_us, us, st, complete = await t.timed(path, data, stream)
            if not record:
                continue
            status.setdefault(t.name, st)
            total[t.name].append(us)
            ttfb[t.name].append(first_us)
            bad[t.name] += st != 200
            incomplete[t.name] += not complete

    block = int(job.get("block", 10))
    try:
        # Warm-up: open every connection of the pool (so each worker process of a target gets
        # its share) and fill each worker's verdict cache. Not recorded.
        warmup = int(job.get("warmup", 5))
        for t in targets:
            await asyncio.gather(*(worker(t, warmup, False) for _ in range(conc)))
        t_end = time.perf_counter() + float(job.get("seconds", 1e9))
        before = clock.read()
        for r in range(int(job.get("max_rounds", 10_000))):
            if r % 2 == 0 and r and time.perf_counter() > t_end:
                break
            for t in targets if r % 2 == 0 else targets[::-1]:
                t0 = time.perf_counter()
                await asyncio.gather(*(worker(t, block, True) for _ in range(conc)))
                busy[t.name] += time.perf_counter() - t0
                blocks[t.name] += 1
                after = clock.read()
                for label, v in after.items():
                    cpu[t.name][label] = cpu[t.name].get(label, 0.0) + v - before[label]
                before = after
    finally:
        for t in targets:
            await t.session.close()
    return {
        "latency_us": total,
        "ttfb_us": ttfb if stream else {},
        "busy_s": busy,
        "blocks": blocks,
        "errors": bad,
        "incomplete": incomplete,
        "status": status,
        "cpu_s": cpu,
    }


async def _stream_once(t: Target, path: str, data: bytes, sse: bool) -> dict[str, Any]:
    t0 = time.perf_counter_ns()
    first = 0
    parts: list[bytes] = []
    async with t.session.post(t.base + path, data=data, headers=HEADERS) as resp:
        status = resp.status
        async for chunk in resp.content.iter_any():
            if chunk and not first:
                first = time.perf_counter_ns()
            parts.append(chunk)
    end = time.perf_counter_ns()
    raw = b"".join(parts)
    if sse:
        events = raw.count(b"\n\n")
        complete = raw.rstrip().endswith(b"data: [DONE]")
    else:
        events = raw.count(b"\n")
        last = raw.rstrip().rsplit(b"\n", 1)[-1]
        complete = b'"done":true' in last
    return {
        "ttfb_us": ((first or end) - t0) // 1000,
        "total_us": (end - t0) // 1000,
        "events": events,
        "bytes": len(raw),
        "status": status,
        "complete": complete,
    }


async def _stream(job: dict[str, Any]) -> dict[str, Any]:
    req = job["request"]
    path = PATHS[req.get("api", "generate")]
    sse = req.get("api") == "openai"
    data = body({**req, "stream": True})
    targets = [Target(n, u, 1) for n, u in job["targets"].items()]
    out: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    try:
        for _ in range(int(job.get("warmup", 3))):
            for t in targets:
                await _stream_once(t, path, data, sse)
        t_end = time.perf_counter() + float(job.get("seconds", 1e9))
        for i in range(int(job["n"])):
            if i % 2 == 0 and i and time.perf_counter() > t_end:
                break
            for t in targets if i % 2 == 0 else targets[::-1]:
                out[t.name].append(await _stream_once(t, path, data, sse))
    finally:
        for t in targets:
            await t.session.close()
    return {"samples": out}


def _text_of(obj: dict[str, Any]) -> str:
    """The answer text of one NDJSON line or SSE chunk (chat, generate or OpenAI chat)."""
    if "message" in obj:
        return str((obj.get("message") or {}).get("content") or "")
    if "response" in obj:
        return str(obj.get("response") or "")
    choices = obj.get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


async def _lag_once(t: Target, path: str, data: bytes, sse: bool) -> dict[str, Any]:
    """One paced stream, read as it arrives: when text came, how much, and how much the
    upstream had sent by then (from each line's ``bench_t``/``bench_sent``, same clock)."""
    t0 = time.perf_counter_ns()
    buffer = b""
    received = 0  # characters of text so far
    schedule: list[tuple[int, int]] = []  # (sent at µs since the epoch, characters sent by then)
    first_us = first_wall = received_first = None
    before_end = None  # text received before the read that carried the end of the stream
    async with t.session.post(t.base + path, data=data, headers=HEADERS) as resp:
        async for chunk in resp.content.iter_any():
            now = (time.perf_counter_ns() - t0) // 1000
            wall = time.time_ns() // 1000
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            got, ended = 0, False
            for line in lines:
                if sse:
                    if not line.startswith(b"data: "):
                        continue
                    line = line[6:]
                    if line.strip() == b"[DONE]":
                        ended = True
                        continue
                if not line.strip():
                    continue
                obj = orjson.loads(line)
                got += len(_text_of(obj))
                if obj.get("bench_t"):
                    schedule.append((int(obj["bench_t"]), int(obj["bench_sent"])))
                ended = ended or obj.get("done") is True
            if ended and before_end is None:
                before_end = received
            received += got
            if got and first_us is None:
                first_us, first_wall, received_first = now, wall, received
    end_us = (time.perf_counter_ns() - t0) // 1000
    sent = max((n for _, n in schedule), default=0)
    held = None
    if first_wall is not None and received_first is not None:
        # Tokens whose line was merged into a later one are missing: at most one token low.
        sent_then = max((n for at, n in schedule if at <= first_wall), default=0)
        held = max(0, sent_then - received_first)
    return {
        "first_text_us": first_us,
        "held_at_first": held,
        "final_burst": received - (before_end if before_end is not None else received),
        "total_us": end_us,
        "chars": received,
        "sent": sent,
        "status": resp.status,
    }


async def _lag(job: dict[str, Any]) -> dict[str, Any]:
    req = job["request"]
    path = PATHS[req.get("api", "chat")]
    sse = req.get("api") == "openai"
    data = body({**req, "stream": True, "prose": True})
    targets = [Target(n, u, 1) for n, u in job["targets"].items()]
    out: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    try:
        for _ in range(int(job.get("warmup", 1))):
            for t in targets:
                await _lag_once(t, path, data, sse)
        t_end = time.perf_counter() + float(job.get("seconds", 1e9))
        for i in range(int(job["n"])):
            if i and time.perf_counter() > t_end:
                break
            # Rotate the order, so no target is always first after a pause.
            k = i % len(targets)
            for t in targets[k:] + targets[:k]:
                out[t.name].append(await _lag_once(t, path, data, sse))
    finally:
        for t in targets:
            await t.session.close()
    return {"samples": out}


async def _fill(job: dict[str, Any]) -> dict[str, Any]:
    conc = int(job.get("concurrency", 16))
    req = job["request"]
    path = PATHS[req.get("api", "generate")]
    t = Target("fill", job["url"], conc)
    start, count = int(job.get("start", 0)), int(job["count"])
    statuses: dict[int, int] = {}
    run = job.get("run", "fill")

    async def worker(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            _, status = await t.post(path, body(req, f"{run}-{_tag(i)}"))
            statuses[status] = statuses.get(status, 0) + 1

    step = -(-count // conc)
    t0 = time.perf_counter()
    try:
        await asyncio.gather(
            *(
                worker(start + k, min(start + k + step, start + count))
                for k in range(0, count, step)
            )
        )
    finally:
        await t.session.close()
    return {
        "seconds": time.perf_counter() - t0,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


async def _poll(job: dict[str, Any]) -> dict[str, Any]:
    url = _check_loopback(job["url"])
    field, value = job["field"], job["value"]
    interval, deadline = float(job.get("interval", 0.01)), float(job.get("max_seconds", 15))
    t0 = time.perf_counter()
    polls = 0
    seen: Any = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.perf_counter() - t0 < deadline:
            polls += 1
            try:
                async with session.get(url) as resp:
                    doc = await resp.json(content_type=None)
                seen = doc
                for key in field.split("."):
                    seen = seen.get(key) if isinstance(seen, dict) else None
                if seen == value:
                    return {"seconds": time.perf_counter() - t0, "polls": polls, "reached": True}
            except (TimeoutError, aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(interval)
    return {"seconds": time.perf_counter() - t0, "polls": polls, "reached": False, "last": seen}


async def _single(job: dict[str, Any]) -> dict[str, Any]:
    """``count`` sequential requests with fresh connections' worth of timing, one target."""
    req = job["request"]
    path = PATHS[req.get("api", "generate")]
    t = Target("single", job["url"], 1)
    data = body(req)
    out = []
    try:
        for _ in range(int(job.get("count", 1))):
            out.append(await t.post(path, data))
    finally:
        await t.session.close()
    return {"latency_us": [us for us, _ in out], "status": [s for _, s in out]}


JOBS = {
    "blocks": _blocks,
    "interleave": _interleave,
    "stream": _stream,
    "lag": _lag,
    "fill": _fill,
    "poll": _poll,
    "single": _single,
}


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        job = orjson.loads(line)
        try:
            result = await JOBS[job["kind"]](job)
            result["ok"] = True
        except Exception as exc:  # reported to the orchestrator, which decides
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    else:
        uvloop.run(main())
