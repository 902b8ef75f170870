"""Plug-in scanners for the tests, loaded by dotted path (``guard.sample_plugin:...``)."""

from __future__ import annotations

from typing import Any

from guard_proxy.guard import Finding

__version__ = "1.2.3"

BUILT: list[dict[str, Any]] = []


class WordScanner:
    """Blocks texts containing ``options["word"]``; needs the whole text unless ``window``."""

    name = "ignored-the-configured-name-wins"

    def __init__(self, word: str, window: int) -> None:
        self.word = word
        self.window = window

    def scan(self, text: str) -> Finding | None:
        return Finding(self.name, "forbidden word") if self.word in text else None


def factory(options: dict[str, Any]) -> WordScanner:
    BUILT.append(dict(options))
    return WordScanner(options.get("word", "plugh"), options.get("window", 0))


class Exploding:
    name = "exploding"
    window = 0

    def scan(self, text: str) -> Finding | None:
        raise ValueError(f"cannot handle {text!r}")


def exploding(options: dict[str, Any]) -> Exploding:
    return Exploding()


class WrongResult:
    name = "wrong"
    window = 0

    def scan(self, text: str) -> Any:
        return text


def wrong_result(options: dict[str, Any]) -> WrongResult:
    return WrongResult()


def failing_factory(options: dict[str, Any]) -> Any:
    raise RuntimeError("model file missing")


def not_a_scanner(options: dict[str, Any]) -> Any:
    return object()


class BadWindow:
    name = "bad"
    window = -1

    def scan(self, text: str) -> Finding | None:
        return None


def bad_window(options: dict[str, Any]) -> BadWindow:
    return BadWindow()


NOT_CALLABLE = 42


class Quoting:
    name = "quoting"
    window = 0

    def scan(self, text: str) -> Finding | None:
        return Finding(self.name, f"found {text[:40]!r}")


def quoting(options: dict[str, Any]) -> Quoting:
    return Quoting()


class HoldingWordScanner(WordScanner):
    """The same with ``hold``: only a tail that is a prefix of the word is still open."""

    def hold(self, text: str, start: int) -> Any:
        if self.word == "broken":
            return "not an index"
        for i in range(max(start, len(text) - len(self.word) + 1), len(text)):
            if self.word.startswith(text[i:]):
                return i
        return len(text)


def holding(options: dict[str, Any]) -> HoldingWordScanner:
    return HoldingWordScanner(options.get("word", "plugh"), options.get("window", 16))
