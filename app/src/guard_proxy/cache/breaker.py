"""A two-state circuit breaker: ``closed`` lets calls through, ``open`` refuses them.

There is no half-open state for requests: while the breaker is open no request touches the
backend; a background prober calls :meth:`CircuitBreaker.close` when the backend answers.
Single event loop, no awaits inside: every method is atomic under asyncio.
"""

from __future__ import annotations

import time
from typing import Final, Literal

from guard_proxy.api_models import BreakerBody

__all__ = ["CircuitBreaker"]

CLOSED: Final = "closed"
OPEN: Final = "open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; closed again only by :meth:`close`."""

    def __init__(self, threshold: int = 1) -> None:
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold
        self.state: Literal["closed", "open"] = CLOSED
        self.consecutive_failures = 0
        self.opened_at: float | None = None  # unix time of the last opening

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def record_success(self) -> None:
        """A call succeeded: the failure streak ends (the state does not change)."""
        self.consecutive_failures = 0

    def record_failure(self) -> bool:
        """A call failed. Returns True exactly when this failure opened the breaker."""
        self.consecutive_failures += 1
        if self.state == CLOSED and self.consecutive_failures >= self.threshold:
            self.trip()
            return True
        return False

    def trip(self) -> None:
        """Open now, whatever the count (used when the backend is unusable at start-up)."""
        self.state = OPEN
        self.opened_at = time.time()

    def close(self) -> None:
        """The prober saw the backend answer: let calls through again."""
        self.state = CLOSED
        self.consecutive_failures = 0

    def snapshot(self) -> BreakerBody:
        """The breaker as ``/cache/health`` shows it."""
        return BreakerBody(
            state=self.state,
            consecutive_failures=self.consecutive_failures,
            threshold=self.threshold,
        )
