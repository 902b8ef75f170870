"""A plug-in factory that wraps any LLM Guard scanner, named by dotted path.

LLM Guard is not a dependency: install it next to guard_proxy and configure, for example::

    guard:
      plugins:
        - name: toxicity
          path: guard_proxy.guard.llm_guard:factory
          directions: [input]
          options:
            scanner: llm_guard.input_scanners.Toxicity
            kwargs: {threshold: 0.7}

Input scanners are called as ``scan(text)``, output scanners (``llm_guard.output_scanners``,
or ``output: true``) as ``scan("", text)``; both return ``(sanitized, is_valid, risk_score)``.
They need the whole text, so their ``window`` is 0.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from guard_proxy.guard.types import Finding


class LLMGuardScanner:
    """One LLM Guard scanner behind the :class:`~guard_proxy.guard.types.Scanner` protocol."""

    __slots__ = ("_output", "_scanner", "_title", "name", "version", "window")

    def __init__(self, scanner: Any, *, title: str, output: bool, version: str) -> None:
        self.name = f"llm_guard.{title}"
        self.window = 0
        self.version = version
        self._scanner = scanner
        self._title = title
        self._output = output

    def scan(self, text: str) -> Finding | None:
        result = self._scanner.scan("", text) if self._output else self._scanner.scan(text)
        _, valid, score = result
        if valid:
            return None
        return Finding(self.name, f"{self._title} (risk score {float(score):.2f})")


def factory(options: dict[str, Any]) -> LLMGuardScanner:
    """Build the scanner named by ``options["scanner"]`` with ``options.get("kwargs", {})``."""
    path = options.get("scanner")
    if not isinstance(path, str) or "." not in path:
        raise ValueError("options.scanner must be a dotted path such as llm_guard.input_scanners.X")
    kwargs = options.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError("options.kwargs must be a mapping")
    unknown = set(options) - {"scanner", "kwargs", "output"}
    if unknown:
        raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
    module_name, _, cls_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    output = bool(options.get("output", ".output_scanners" in module_name))
    top = module_name.split(".")[0]
    version = getattr(importlib.import_module(top), "__version__", "") or _dist_version(top)
    return LLMGuardScanner(cls(**kwargs), title=cls_name, output=output, version=str(version))


def _dist_version(top: str) -> str:
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            continue
    return ""
