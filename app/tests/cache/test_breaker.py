"""The breaker opens after `threshold` consecutive failures and only close() closes it."""

from __future__ import annotations

import pytest

from guard_proxy.cache.breaker import CircuitBreaker


def test_opens_at_threshold_once() -> None:
    breaker = CircuitBreaker(3)
    assert breaker.record_failure() is False
    assert breaker.record_failure() is False
    assert breaker.is_closed
    assert breaker.record_failure() is True
    assert breaker.is_open
    assert breaker.opened_at is not None
    assert breaker.record_failure() is False  # already open: no second "opened"


def test_success_resets_streak() -> None:
    breaker = CircuitBreaker(2)
    breaker.record_failure()
    breaker.record_success()
    assert breaker.record_failure() is False
    assert breaker.is_closed


def test_close_and_trip() -> None:
    breaker = CircuitBreaker(1)
    breaker.trip()
    assert breaker.is_open
    breaker.close()
    assert breaker.is_closed
    assert breaker.snapshot().model_dump() == {
        "state": "closed",
        "consecutive_failures": 0,
        "threshold": 1,
    }


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0)
