"""The ONNX classifier as a plug-in for bench/model_scanners.py; ``inline: true`` makes it
declare itself cheap, so the proxy calls it in the event loop (the comparison's baseline)."""

from __future__ import annotations

from typing import Any

from guard_proxy.guard.onnx_classifier import OnnxClassifier
from guard_proxy.guard.onnx_classifier import factory as onnx_factory


def factory(options: dict[str, Any]) -> OnnxClassifier:
    opts = dict(options)
    inline = bool(opts.pop("inline", False))
    scanner = onnx_factory(opts)
    scanner.inline = inline
    return scanner
