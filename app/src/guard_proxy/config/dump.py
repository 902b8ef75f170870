"""Render settings as plain data with every secret masked."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

REDACTED = "<redacted>"


def redacted(obj: Any) -> Any:
    """Return ``obj`` (settings) as dicts/lists, non-empty secrets replaced by ``REDACTED``."""
    if isinstance(obj, BaseModel):
        return {name: redacted(getattr(obj, name)) for name in type(obj).model_fields}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("secret") and value:
                out[f.name] = REDACTED
            else:
                out[f.name] = redacted(value)
        return out
    if isinstance(obj, tuple | list):
        return [redacted(v) for v in obj]
    if isinstance(obj, dict):
        return {k: redacted(v) for k, v in obj.items()}
    return obj
