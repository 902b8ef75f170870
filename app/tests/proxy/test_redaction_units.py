"""The proxy's redaction helpers without processes: body rewriting, answers' tool calls,
the header, and verdicts that carry spans through the cache codec."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from guard_proxy_testing.guards import NoCache

from guard_proxy.config.settings import GuardSettings
from guard_proxy.guard import Direction, Guard, Verdict
from guard_proxy.guard.redaction import Finder, Vault
from guard_proxy.proxy.framing import Ndjson
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.redact import (
    RedactionPolicy,
    Unredactable,
    header_value,
    redact_body,
    rewrite_answer,
)
from guard_proxy.proxy.release import Releaser
from guard_proxy.proxy.shapes import CHAT, OPENAI_CHAT
from guard_proxy.proxy.streamformat import StreamFormat
from guard_proxy.proxy.verdicts import VERDICTS, VerdictService

POLICY = RedactionPolicy.from_settings(GuardSettings())
FINDER = Finder.from_settings(GuardSettings().input)


def _vault() -> Vault:
    vault = Vault(POLICY.restorable)
    vault.placeholder("email", "alice@example.com")
    return vault


def test_policy_restores_personal_data_not_credentials() -> None:
    assert POLICY.restorable == {"email", "credit_card", "iban"}
    assert POLICY.output is not None and "email" in POLICY.output.kinds


def test_body_rewrite_covers_every_scanned_field() -> None:
    data: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "to a@b.co"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "f", "arguments": '{"to":"a@b.co"}'}}],
            },
        ],
    }
    fields = OPENAI_CHAT.fields(data)
    vault = Vault()
    body = orjson.loads(redact_body(data, fields, [FINDER.spans(f.text) for f in fields], vault))
    assert body["messages"][0]["content"][0]["text"] == "to [EMAIL_1]"
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"to":"[EMAIL_1]"}'
    assert data["messages"][0]["content"][0]["text"] == "to a@b.co"  # the original is untouched
    assert vault.counts() == {"email": 1}


def test_json_arguments_whose_rewrite_is_not_json_are_refused() -> None:
    data: dict[str, Any] = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [{"function": {"arguments": {"n": 4111111111111111}}}],
            }
        ]
    }
    fields = CHAT.fields(data)
    with pytest.raises(Unredactable):
        redact_body(data, fields, [FINDER.spans(f.text) for f in fields], Vault())


def test_header_names_kinds_and_counts() -> None:
    assert header_value({"email": 2, "credit_card": 1}) == b"credit_card=1,email=2"


def test_verdict_spans_survive_the_cache_codec() -> None:
    verdict = Verdict(True, (), (("email", 3, 20), ("credit_card", 30, 49)))
    assert VERDICTS.decode(VERDICTS.encode(verdict)) == verdict
    assert b"@" not in VERDICTS.encode(verdict)
    assert VERDICTS.decode(b'{"allowed": true, "spans": [["email", 5, 2]]}') is None


def test_complete_answer_tool_calls_are_restored() -> None:
    obj: dict[str, Any] = {
        "message": {
            "role": "assistant",
            "content": "Sent to [EMAIL_1].",
            "tool_calls": [{"function": {"name": "send", "arguments": {"to": "[EMAIL_1]"}}}],
        }
    }
    rewriter = POLICY.rewriter(_vault())
    changed, masked = rewrite_answer(CHAT, obj, rewriter)
    assert changed and masked == {}
    assert obj["message"]["content"] == "Sent to alice@example.com."
    assert obj["message"]["tool_calls"][0]["function"]["arguments"] == {"to": "alice@example.com"}


def test_streamed_tool_call_arguments_are_restored() -> None:
    guard = Guard.from_settings(GuardSettings())
    verdicts = VerdictService(guard, NoCache(), Metrics(), "closed")
    framing = Ndjson()
    releaser = Releaser(
        guard.stream(Direction.OUTPUT),
        CHAT,
        StreamFormat.NDJSON,
        verdicts,
        POLICY.rewriter(_vault()),
    )
    call = {"function": {"name": "send", "arguments": {"to": "[EMAIL_1]"}}}
    lines = [
        orjson.dumps({"message": {"role": "assistant", "content": "", "tool_calls": [call]}}),
        b'{"message":{"role":"assistant","content":""},"done":true}',
    ]
    out: list[bytes] = []
    for line in lines:
        step, _ = framing.lines([line], releaser)
        out += (step or releaser.flush()).out
    first = orjson.loads(out[0])
    assert first["message"]["tool_calls"][0]["function"]["arguments"] == {"to": "alice@example.com"}
