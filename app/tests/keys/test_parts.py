"""The client-key parts on their own: credentials, the keys file, token counts, local windows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from guard_proxy.keys.credentials import Refusal, presented_key
from guard_proxy.keys.limits import LocalCounts
from guard_proxy.keys.store import KeysFileError, KeyStore, Limits, parse_keys
from guard_proxy.keys.tokens import TAIL, TokenCounter

HEADER = b"x-api-key"


def scope(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, object]:
    return {"type": "http", "headers": headers, "query_string": query}


# ---------------------------------------------------------------- credentials


def test_bearer_wins_and_the_header_is_the_other_way() -> None:
    assert presented_key(scope([(b"authorization", b"Bearer abc")]), HEADER) == b"abc"
    assert presented_key(scope([(b"authorization", b"bearer  abc ")]), HEADER) == b"abc"
    assert presented_key(scope([(HEADER, b" k1 ")]), HEADER) == b"k1"
    both = [(HEADER, b"k1"), (b"authorization", b"Bearer k2")]
    assert presented_key(scope(both), HEADER) == b"k2"


@pytest.mark.parametrize(
    ("headers", "query", "status", "reason"),
    [
        ([], b"", 401, "missing"),
        ([(b"authorization", b"Basic abc")], b"", 401, "malformed"),
        ([(b"authorization", b"Bearer a b")], b"", 401, "malformed"),
        ([(b"authorization", b"Bearer")], b"", 401, "empty"),
        ([(HEADER, b"   ")], b"", 401, "empty"),
        ([(b"authorization", b"Bearer abc")], b"api_key=abc", 400, "key_in_query"),
        ([], b"model=x&Token=abc", 400, "key_in_query"),
    ],
)
def test_refusals_say_why_and_never_echo_the_key(
    headers: list[tuple[bytes, bytes]], query: bytes, status: int, reason: str
) -> None:
    refusal = presented_key(scope(headers, query), HEADER)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.reason) == (status, reason)
    assert "abc" not in refusal.message


def test_other_query_parameters_are_fine() -> None:
    got = presented_key(scope([(HEADER, b"k")], b"stream=true&keep_alive=5m"), HEADER)
    assert got == b"k"


# ---------------------------------------------------------------- keys file


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_the_table_looks_keys_up_by_their_hash() -> None:
    table = parse_keys(
        {"keys": [{"name": "team-a", "sha256": digest("s3cret"), "limits": {"tokens_per_day": 9}}]}
    )
    record = table.lookup(b"s3cret")
    assert record is not None and record.name == "team-a"
    assert record.limits == Limits(tokens_per_day=9)
    assert table.lookup(b"s3cret ") is None


def test_every_problem_of_the_file_is_named() -> None:
    with pytest.raises(KeysFileError) as info:
        parse_keys(
            {
                "keys": [
                    {"name": "team-a", "sha256": digest("a"), "limits": {"concurrent_streams": 0}},
                    {"name": "team-a", "sha256": "ABC"},
                    {"name": "b", "sha256": digest("a"), "colour": "red"},
                ]
            }
        )
    where = [w for w, _ in info.value.problems]
    assert "keys[0] (team-a).limits.concurrent_streams" in where
    assert "keys[1].name" in where and "keys[1].sha256" in where
    assert "keys[2].colour" in where and "keys[2] (b).sha256" in where


def test_a_broken_reload_keeps_the_keys_in_force(tmp_path: Path) -> None:
    path = tmp_path / "keys.yml"
    path.write_text(f"keys: [{{name: a, sha256: {digest('k')}}}]\n")
    store = KeyStore(str(path), 1.0)
    path.write_text("keys: [{name: a}]\n")
    assert store.check() is False
    assert store.table.lookup(b"k") is not None and store.reload_errors == 1
    path.write_text(f"keys: [{{name: b, sha256: {digest('j')}}}]\n")
    assert store.check() is True
    assert store.table.lookup(b"k") is None and store.table.lookup(b"j") is not None


# ---------------------------------------------------------------- token counts


def test_ollama_counts_come_from_the_last_object() -> None:
    counter = TokenCounter(sse=False)
    counter.feed(b'{"response":"say \\"eval_count\\":999","done":false}\n')
    counter.feed(b'{"done":true,"prompt_eval_count":12,"eval_count":30}\n')
    assert counter.counts() == (12, 30)


def test_openai_usage_and_a_stream_without_it() -> None:
    done = TokenCounter(sse=False)
    done.feed(b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}')
    assert done.counts() == (5, 7)
    stream = TokenCounter(sse=True)
    for _ in range(4):
        stream.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n')
    stream.feed(b"data: [DONE]\n\n")
    assert stream.counts() == (0, 4)


def test_only_the_tail_is_kept() -> None:
    counter = TokenCounter(sse=False)
    counter.feed(b"x" * (TAIL * 3))
    counter.feed(b'{"prompt_eval_count":1,"eval_count":2}')
    assert len(counter.tail) == TAIL
    assert counter.counts() == (1, 2)


# ---------------------------------------------------------------- local windows


def test_the_fallback_divides_each_limit_by_the_share() -> None:
    counts = LocalCounts(share=3)
    assert counts.limit(10) == 3 and counts.limit(2) == 1 and counts.limit(0) == 0
    limits = Limits(requests_per_minute=7)  # 7 // 3 = 2 here
    decisions = [counts.admit("a", limits, False, 60.0) for _ in range(3)]
    assert [d.limit for d in decisions] == [None, None, "requests_per_minute"]
    assert decisions[2].retry_after >= 1 and not decisions[2].shared


def test_stream_slots_and_token_budgets_locally() -> None:
    counts = LocalCounts(share=1)
    limits = Limits(concurrent_streams=1, tokens_per_minute=10)
    first = counts.admit("a", limits, True, 60.0)
    assert first.admitted and first.lease
    assert counts.admit("a", limits, True, 60.0).limit == "concurrent_streams"
    assert counts.admit("a", limits, False, 60.0).admitted  # no slot for other routes
    counts.record("a", 10, first.lease)
    assert counts.admit("a", limits, True, 60.0).limit == "tokens_per_minute"
    assert counts.usage("a").tokens_minute == 10 and counts.usage("a").streams == 0
