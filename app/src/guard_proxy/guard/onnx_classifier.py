"""A plug-in scanner: a Hugging Face sequence classifier exported to ONNX, run on CPU.

Needs the ``onnx`` extra (``pip install 'guard-proxy[onnx]'``: onnxruntime and tokenizers, no
torch) and a local directory with ``model.onnx``, ``tokenizer.json`` and ``config.json``
(``id2label``). Configure it as a plug-in (see ``docs/scanners.md``)::

    guard:
      plugins:
        - name: prompt-guard
          path: guard_proxy.guard.onnx_classifier:factory
          options: {model_dir: /opt/guard-proxy/models/prompt-guard, threshold: 0.9}

It runs off the event loop (``inline`` is false) and scans in batches: each text is split
into windows of ``max_length`` tokens that overlap by ``stride`` (the tokenizer's own
overflow), every window of every text of a batch goes through one ``InferenceSession.run``,
and a text is flagged when a window's softmax probability of a flagged label reaches
``threshold``. Its ``version`` is the sha256 of ``model.onnx`` (what the Hub lists for the
file) plus a digest of the tokenizer and config, so the verdict cache's keys change with
the model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guard_proxy.guard.types import Finding

MODEL = "model.onnx"
TOKENIZER = "tokenizer.json"
CONFIG = "config.json"
OPTIONS = ("model_dir", "threshold", "labels", "max_length", "stride", "max_windows", "threads")


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class OnnxClassifier:
    """One loaded model; ``scan``/``scan_batch`` are thread-safe (ONNX Runtime's ``run`` is)."""

    inline = False
    window = 0

    def __init__(
        self,
        model_dir: Path,
        *,
        threshold: float,
        labels: Sequence[str] | None,
        max_length: int,
        stride: int,
        max_windows: int,
        threads: int,
    ) -> None:
        try:
            import numpy
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise RuntimeError(
                "onnx_classifier needs the onnx extra: pip install 'guard-proxy[onnx]'"
            ) from exc
        for name in (MODEL, TOKENIZER, CONFIG):
            if not (model_dir / name).is_file():
                raise ValueError(f"{model_dir / name} is missing")
        config = json.loads((model_dir / CONFIG).read_text(encoding="utf-8"))
        id2label = config.get("id2label") if isinstance(config, dict) else None
        if not isinstance(id2label, dict) or not id2label:
            raise ValueError(f"{model_dir / CONFIG} has no id2label")
        self.id2label = {int(k): str(v) for k, v in id2label.items()}
        if labels is None:  # class 0 is the benign one in every model docs/scanners.md lists
            labels = [v for k, v in sorted(self.id2label.items()) if k != 0]
        unknown = sorted(set(labels) - set(self.id2label.values()))
        if unknown:
            raise ValueError(f"labels {unknown} are not in id2label {self.id2label}")
        self.flagged = [k for k, v in sorted(self.id2label.items()) if v in labels]
        self.threshold = threshold
        self.max_windows = max_windows
        self.np: Any = numpy
        self.name = "onnx_classifier"

        self.tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, stride=stride)
        self.pad_id = self.tokenizer.padding["pad_id"] if self.tokenizer.padding else 0
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(model_dir / MODEL), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]
        missing = {"input_ids", "attention_mask"} - set(self.inputs)
        if missing:
            raise ValueError(f"{model_dir / MODEL} has no input(s) {sorted(missing)}")
        extra = set(self.inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        if extra:
            raise ValueError(f"{model_dir / MODEL} wants input(s) {sorted(extra)}")
        self.sha256 = file_sha256(model_dir / MODEL)
        rest = hashlib.sha256()
        for name in (TOKENIZER, CONFIG):
            rest.update(file_sha256(model_dir / name).encode())
        self.version = f"{self.sha256}+{rest.hexdigest()[:16]}"

    def windows(self, text: str) -> list[list[int]]:
        """The token ids of each window of ``text`` (special tokens included)."""
        encoding = self.tokenizer.encode(text)
        rest = [o.ids for o in encoding.overflowing]
        if self.max_windows and len(rest) >= self.max_windows:
            # The first windows and the last one: the end of a text is where a payload
            # padded with filler would sit.
            rest = [*rest[: self.max_windows - 2], rest[-1]] if self.max_windows > 1 else []
        return [encoding.ids, *rest]

    def probabilities(self, rows: list[list[int]]) -> Any:
        """Softmax over the logits of each row (one session run; rows padded to the longest)."""
        np = self.np
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        logits = np.asarray(self.session.run(None, feed)[0], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def scan_batch(self, texts: Sequence[str]) -> list[Finding | None]:
        """One finding (or None) per text, from one model run over all their windows."""
        spans: list[tuple[int, int]] = []
        rows: list[list[int]] = []
        for text in texts:
            windows = self.windows(text)
            spans.append((len(rows), len(rows) + len(windows)))
            rows.extend(windows)
        probs = self.probabilities(rows)
        results: list[Finding | None] = []
        for start, end in spans:
            best = probs[start:end].max(axis=0)
            hit = max(self.flagged, key=lambda k: float(best[k]))
            score = float(best[hit])
            if score >= self.threshold:
                label = self.id2label[hit]
                results.append(Finding(self.name, f"{label} (score {score:.2f})"))
            else:
                results.append(None)
        return results

    def scan(self, text: str) -> Finding | None:
        return self.scan_batch([text])[0]


def _number(options: dict[str, Any], key: str, default: float, kind: type, low: float) -> Any:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ValueError(f"options.{key} must be a number >= {low}, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"options.{key} must be an integer, got {value!r}")
    return kind(value)


def factory(options: dict[str, Any]) -> OnnxClassifier:
    """Build the scanner from plug-in ``options`` (``model_dir`` required; see the module)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown options: {', '.join(unknown)}")
    model_dir = options.get("model_dir")
    if not isinstance(model_dir, str) or not model_dir:
        raise ValueError("options.model_dir must name the model's directory")
    labels = options.get("labels")
    if labels is not None and (
        not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels)
    ):
        raise ValueError("options.labels must be a non-empty list of label names")
    threshold = _number(options, "threshold", 0.5, float, 0.0)
    if threshold > 1:
        raise ValueError(f"options.threshold must be at most 1, got {threshold}")
    max_length = _number(options, "max_length", 512, int, 8)
    stride = _number(options, "stride", 64, int, 0)
    if stride >= max_length // 2:
        raise ValueError("options.stride must be less than half of options.max_length")
    return OnnxClassifier(
        Path(model_dir),
        threshold=threshold,
        labels=labels,
        max_length=max_length,
        stride=stride,
        max_windows=_number(options, "max_windows", 0, int, 0),
        threads=_number(options, "threads", 1, int, 1),
    )
