"""The model tokens an answer reports, read from the end of the body the client received.

Ollama puts ``prompt_eval_count`` and ``eval_count`` in its last object (the whole answer,
or the final ``"done": true`` NDJSON line); OpenAI-compatible answers carry ``usage`` with
``prompt_tokens`` and ``completion_tokens`` (a stream: in the usage chunk before
``data: [DONE]``, sent when the client asks with ``stream_options.include_usage``). Only the
last :data:`TAIL` bytes are kept, and the fields are found by a pattern that cannot match
inside a JSON string (a quote in a string is escaped). An SSE stream without a usage chunk
is counted as one output token per content event (Ollama sends one token per event) and no
input tokens.
"""

from __future__ import annotations

import re

__all__ = ["TAIL", "TokenCounter"]

TAIL = 4096

_FIELDS = re.compile(
    rb'(?<!\\)"(prompt_eval_count|eval_count|prompt_tokens|completion_tokens)"\s*:\s*(\d+)'
)
_INPUT = (b"prompt_eval_count", b"prompt_tokens")


class TokenCounter:
    """Feed it the body chunks sent to the client; :meth:`counts` gives (input, output)."""

    __slots__ = ("events", "sse", "tail")

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.tail = b""
        self.events = 0

    def feed(self, chunk: bytes) -> None:
        if self.sse:
            self.events += chunk.count(b'data: {"')
        tail = self.tail + chunk
        self.tail = tail[-TAIL:] if len(tail) > TAIL else tail

    def counts(self) -> tuple[int, int]:
        """Input and output tokens (the last value of each field in the tail)."""
        found: dict[bytes, int] = {}
        for match in _FIELDS.finditer(self.tail):
            found[match.group(1)] = int(match.group(2))
        if not found:
            return (0, self.events) if self.sse else (0, 0)
        tokens_in = next((found[k] for k in _INPUT if k in found), 0)
        tokens_out = found.get(b"eval_count", found.get(b"completion_tokens", 0))
        return tokens_in, tokens_out
