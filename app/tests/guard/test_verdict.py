"""Verdict values: small, orjson-able, text-free, round-tripping through the cache form."""

from __future__ import annotations

import orjson
import pytest

from guard_proxy.guard import ALLOWED, Direction, Finding, Verdict


def test_round_trip_through_orjson() -> None:
    verdict = Verdict(False, (Finding("pii", "card number"), Finding("secrets", "JWT")))
    stored = orjson.dumps(verdict.to_dict())
    assert Verdict.from_dict(orjson.loads(stored)) == verdict
    assert Verdict.from_dict(orjson.loads(orjson.dumps(ALLOWED.to_dict()))) == ALLOWED
    assert len(stored) < 100


def test_scanners_are_unique_and_ordered() -> None:
    verdict = Verdict(False, (Finding("pii", "a"), Finding("secrets", "b"), Finding("pii", "c")))
    assert verdict.scanners == ["pii", "secrets"]
    assert ALLOWED.scanners == []


def test_of() -> None:
    assert Verdict.of([]) is ALLOWED
    assert Verdict.of([Finding("x", "y")]) == Verdict(False, (Finding("x", "y"),))


@pytest.mark.parametrize(
    "bad",
    [{}, {"allowed": "yes"}, {"allowed": True, "findings": [["only-one"]]}, {"allowed": 1}],
)
def test_from_dict_rejects_malformed(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="malformed verdict"):
        Verdict.from_dict(bad)


def test_values_are_frozen() -> None:
    with pytest.raises(AttributeError):
        ALLOWED.allowed = False
    assert Direction("output") is Direction.OUTPUT
    assert str(Direction.INPUT) == "input"
