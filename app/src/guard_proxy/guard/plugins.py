"""External scanners loaded by dotted path: ``package.module:factory``.

``factory(options: dict)`` returns a :class:`~guard_proxy.guard.types.Scanner`. The loaded
scanner is wrapped so that its findings carry the configured name and a misbehaving plug-in
is reported as a :class:`ScannerError`, never with the scanned text.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Sequence
from typing import Any

from guard_proxy.config.settings import PluginSettings
from guard_proxy.exceptions import ScannerError, ScannerLoadError
from guard_proxy.guard.types import Finding

_PATH = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


QUOTE = 12
WITHHELD = "flagged (reason withheld: it quoted the scanned text)"


def safe_reason(reason: str, text: str) -> str:
    """``reason``, unless it repeats ``QUOTE`` or more characters of ``text`` (or is too long).

    The contract says a reason never contains scanned text; this enforces it for plug-ins.
    """
    if len(reason) > 200:
        return WITHHELD
    if len(reason) >= QUOTE:
        for i in range(len(reason) - QUOTE + 1):
            if reason[i : i + QUOTE] in text:
                return WITHHELD
    elif reason and reason == text:
        return WITHHELD
    return reason


class PluginScanner:
    """A loaded plug-in under its configured name.

    ``inline`` is the plug-in's own ``inline`` (only ``True`` runs it on the event loop; see
    :mod:`guard_proxy.guard.offload`); ``scan_batch`` is set when the plug-in has one.
    """

    __slots__ = ("_inner", "inline", "name", "path", "scan_batch", "version", "window")

    def __init__(self, name: str, path: str, inner: Any, window: int, version: str) -> None:
        self.name = name
        self.path = path
        self.window = window
        self.version = version
        self.inline = getattr(inner, "inline", False) is True
        self._inner = inner
        batch = callable(getattr(inner, "scan_batch", None))
        self.scan_batch = self._scan_batch if batch else None

    def scan(self, text: str) -> Finding | None:
        return self._named(self._inner.scan(text), text)

    def _scan_batch(self, texts: Sequence[str]) -> list[Finding | None]:
        results = list(self._inner.scan_batch(list(texts)))
        if len(results) != len(texts):
            raise ScannerError(
                self.name, f"scan_batch returned {len(results)} results for {len(texts)} texts"
            )
        return [self._named(r, t) for r, t in zip(results, texts, strict=True)]

    def _named(self, result: object, text: str) -> Finding | None:
        if result is None:
            return None
        if not isinstance(result, Finding):
            raise ScannerError(self.name, f"returned {type(result).__name__}, not Finding or None")
        return Finding(self.name, safe_reason(str(result.reason), text))


class HoldingPluginScanner(PluginScanner):
    """A loaded plug-in that also says which tail of a streamed text it still holds open."""

    __slots__ = ()

    def hold(self, text: str, start: int) -> int:
        """The plug-in's own answer (the stream guard checks that it is an index)."""
        at: int = self._inner.hold(text, start)
        return at


def _version(module_name: str, inner: Any) -> str:
    """The plug-in's version: its own ``version``, its module's, or its distribution's."""
    for value in (getattr(inner, "version", None), getattr(inner, "__version__", None)):
        if isinstance(value, str) and value:
            return value
    module = importlib.import_module(module_name)
    value = getattr(module, "__version__", None)
    if isinstance(value, str) and value:
        return value
    top = module_name.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            continue
    return ""


def describe(index: int, settings: PluginSettings) -> str:
    """How load errors name a plug-in: ``guard.plugins[i] (name, path)``."""
    return f"guard.plugins[{index}] ({settings.name or 'unnamed'}, {settings.path or 'no path'})"


def load_plugin(index: int, settings: PluginSettings) -> PluginScanner:
    """Import, build and check one plug-in; any failure is a :class:`ScannerLoadError`."""
    where = describe(index, settings)
    if not _NAME.match(settings.name):
        raise ScannerLoadError(f"{where}: name must be 1-64 letters, digits, '_', '.' or '-'")
    if not _PATH.match(settings.path):
        raise ScannerLoadError(f"{where}: path must look like 'package.module:factory'")
    module_name, _, attr = settings.path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ScannerLoadError(
            f"{where}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    factory: Any = module
    try:
        for part in attr.split("."):
            factory = getattr(factory, part)
    except AttributeError as exc:
        raise ScannerLoadError(f"{where}: module {module_name!r} has no {attr!r}") from exc
    if not callable(factory):
        raise ScannerLoadError(f"{where}: {attr!r} is not callable")
    try:
        inner = factory(dict(settings.options))
    except Exception as exc:
        raise ScannerLoadError(f"{where}: the factory failed: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(inner, "scan", None)):
        raise ScannerLoadError(f"{where}: the factory returned {type(inner).__name__}, no scan()")
    window = getattr(inner, "window", 0)
    if isinstance(window, bool) or not isinstance(window, int) or window < 0:
        raise ScannerLoadError(f"{where}: window must be an integer >= 0")
    kind = HoldingPluginScanner if callable(getattr(inner, "hold", None)) else PluginScanner
    return kind(settings.name, settings.path, inner, window, _version(module_name, inner))
