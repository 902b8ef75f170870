"""A tiny sequence classifier with the signature of a Hugging Face ONNX export.

``build(directory)`` writes ``model.onnx`` (``input_ids``, ``attention_mask`` -> ``logits``,
int64 ids, a ``[batch, 2]`` float output), a WordPiece ``tokenizer.json`` (BERT normaliser,
pre-tokeniser and ``[CLS] $A [SEP]``) and a ``config.json`` with ``id2label`` (``SAFE``,
``INJECTION``), so ``onnx_classifier`` loads, tokenises, batches and scores it for real.

The model: each token has two scores; the logits are their maximum over the unmasked tokens.
Ordinary words score ``(1, 0)``; :data:`FLAGGED` ``(0, 8)`` (INJECTION ~ 0.999); :data:`GRADED`
``(0, 2.5)`` (INJECTION 0.73 next to another word, 0.88 alone: flagged at threshold 0.5, not
at 0.9). ``weight`` scales the flagged score (a different model file, same behaviour). Also a
script:
``python -m guard_proxy_testing.tiny_model DIR`` writes one and prints its sha256.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

FLAGGED = "pwned"
GRADED = "sketchy"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
WORDS = [
    "hello", "world", "the", "a", "please", "summarize", "this", "text", "what", "is",
    "weather", "today", "tell", "me", "about", "cats", "and", "dogs", "you", "are", "of",
    FLAGGED, GRADED,
]  # fmt: skip
LABELS = {"0": "SAFE", "1": "INJECTION"}


def vocabulary() -> dict[str, int]:
    """Token -> id: the special tokens first, then :data:`WORDS`."""
    return {token: i for i, token in enumerate([*SPECIAL, *WORDS])}


def tokenizer() -> Tokenizer:
    """A BERT-style WordPiece tokenizer over :func:`vocabulary`."""
    vocab = vocabulary()
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tok


def model(weight: float = 8.0) -> onnx.ModelProto:
    """The graph: Gather the token scores, mask them, ReduceMax over the sequence, add a bias."""
    vocab = vocabulary()
    scores = np.zeros((len(vocab), 2), dtype=np.float32)
    for word in WORDS:
        scores[vocab[word]] = (1.0, 0.0)
    scores[vocab["[UNK]"]] = (1.0, 0.0)
    scores[vocab[FLAGGED]] = (0.0, weight)
    scores[vocab[GRADED]] = (0.0, 2.5)
    nodes = [
        helper.make_node("Gather", ["scores", "input_ids"], ["token_scores"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last_axis"], ["mask_3d"]),
        helper.make_node("Mul", ["token_scores", "mask_3d"], ["masked"]),
        helper.make_node("ReduceMax", ["masked"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Add", ["pooled", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-sequence-classifier",
        inputs=[
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(scores, "scores"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
            numpy_helper.from_array(np.array([0.5, 0.0], dtype=np.float32), "bias"),
        ],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="guard-proxy-tests"
    )
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def build(directory: Path, weight: float = 8.0) -> str:
    """Write the model, tokenizer and config into ``directory``; the model file's sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model(weight), str(directory / "model.onnx"))
    tokenizer().save(str(directory / "tokenizer.json"))
    config = {"architectures": ["TinyForSequenceClassification"], "id2label": LABELS}
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return hashlib.sha256((directory / "model.onnx").read_bytes()).hexdigest()


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
