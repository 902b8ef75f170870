"""How the proxy reads a verdict back from the cache (``decode_verdict``)."""

from __future__ import annotations

import orjson
import pytest

from guard_proxy.guard import Verdict
from guard_proxy.guard.types import Finding
from guard_proxy.proxy.verdicts import decode_verdict

BLOCKED = Verdict(False, (Finding("banned_substrings", "banned term"), Finding("pii", "email")))


def test_stored_form_round_trips() -> None:
    stored = orjson.loads(orjson.dumps(BLOCKED.to_dict()))
    assert decode_verdict(stored) == BLOCKED
    assert decode_verdict(stored).scanners == ["banned_substrings", "pii"]


def test_form_of_earlier_releases_is_read_by_field_name() -> None:
    # Earlier releases stored the dataclass itself: findings as objects, not pairs.
    legacy = orjson.loads(orjson.dumps(BLOCKED))
    assert legacy["findings"][0] == {"scanner": "banned_substrings", "reason": "banned term"}
    assert decode_verdict(legacy) == BLOCKED


@pytest.mark.parametrize(
    "value",
    [None, [], "x", {"findings": []}, {"allowed": "no"}, {"allowed": False, "findings": [{}]}],
)
def test_malformed_values_raise_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        decode_verdict(value)
