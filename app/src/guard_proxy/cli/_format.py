"""Human-readable numbers, sizes and times for the operator commands' output."""

from __future__ import annotations

from typing import Any


def human_bytes(value: Any) -> str:
    try:
        n = float(value)
    except (TypeError, ValueError):
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - unreachable


def human_duration(seconds: Any) -> str:
    try:
        total = int(float(seconds))
    except (TypeError, ValueError):
        return "unknown"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def when(value: Any, *, ago: bool = True) -> str | None:
    """A timestamp (epoch seconds or ISO text) as ``ISO (N ago)``; ``None`` when absent."""
    import time
    from datetime import UTC, datetime

    if value in (None, "", 0):
        return None
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(float(value), UTC)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return str(value)
    text = f"{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC"
    if not ago:
        return text
    return f"{text} ({human_duration(max(0.0, time.time() - moment.timestamp()))} ago)"
