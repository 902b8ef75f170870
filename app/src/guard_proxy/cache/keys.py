"""Cache keys: ``<prefix><direction>:<sha256(config_hash + "\\0" + text)>``.

The key covers everything that decides a verdict: the direction and the hash of the scanner
configuration (so a config change makes every old verdict miss) and the scanned text. The
text itself never reaches the cache; only its digest does.
"""

from __future__ import annotations

import hashlib

__all__ = ["glob_escape", "make_key"]


def make_key(prefix: str, direction: str, config_hash: str, text: str) -> str:
    """The cache key of one scan. ``direction`` is ``"input"`` or ``"output"`` by convention."""
    digest = hashlib.sha256(
        config_hash.encode("utf-8") + b"\0" + text.encode("utf-8", "surrogatepass")
    ).hexdigest()
    return f"{prefix}{direction}:{digest}"


def glob_escape(literal: str) -> str:
    """Escape glob metacharacters: ``SCAN MATCH glob_escape(p) + "*"`` means "starts with p"."""
    out = []
    for char in literal:
        if char in "*?[]\\":
            out.append("\\")
        out.append(char)
    return "".join(out)
