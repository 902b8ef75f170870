"""Fail open skips a failing scanner, never the redaction: prompts are still masked and
answers still restored and masked."""

from __future__ import annotations

import orjson
from guard_proxy_testing.guards import NoCache
from guard_proxy_testing.prom import sample

from guard_proxy.config.settings import GuardSettings, PluginSettings
from guard_proxy.guard import Direction, Guard
from guard_proxy.guard.offload import ScanExecutor
from guard_proxy.guard.redaction import Finder, Rewriter, Vault
from guard_proxy.proxy.framing import Ndjson
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.release import Releaser
from guard_proxy.proxy.shapes import CHAT
from guard_proxy.proxy.streamformat import StreamFormat
from guard_proxy.proxy.verdicts import VerdictService

SETTINGS = GuardSettings(
    fail_mode="open",
    plugins=(
        PluginSettings(
            name="boom", path="guard.sample_plugin:exploding", directions=("input", "output")
        ),
    ),
)
GUARD = Guard.from_settings(SETTINGS)


def executor() -> ScanExecutor:
    """Model threads for the plug-in (plug-ins run off the event loop)."""
    return ScanExecutor(threads=1, queue=8, timeout=5.0, max_batch=16)


async def test_input_spans_survive_a_scanner_failure_under_fail_open() -> None:
    metrics = Metrics()
    finder = Finder.from_settings(SETTINGS.input)
    verdicts = VerdictService(
        GUARD, NoCache(), metrics, "open", {Direction.INPUT: finder}, executor=executor()
    )
    check = await verdicts.check(Direction.INPUT, ["write to carol@example.com"])
    assert check.allowed and not check.failed
    assert check.spans == [(("email", 9, 26),)]
    errors = sample(
        metrics.render({}), "guard_proxy_scanner_errors_total", direction="input", fail_mode="open"
    )
    assert errors == 1


def test_stream_keeps_restoring_and_masking_after_a_scanner_failure() -> None:
    vault = Vault({"email"})
    vault.placeholder("email", "alice@example.com")
    verdicts = VerdictService(GUARD, NoCache(), Metrics(), "open", executor=executor())
    framing = Ndjson()
    releaser = Releaser(
        GUARD.stream(Direction.OUTPUT),
        CHAT,
        StreamFormat.NDJSON,
        verdicts,
        Rewriter(vault.restorations(), Finder.from_settings(SETTINGS.output)),
    )
    chunks = ["Hi [EMA", "IL_1], also bo", "b@x.org", " bye"]
    out: list[bytes] = []
    for c in chunks:
        line = orjson.dumps({"message": {"role": "assistant", "content": c}, "done": False})
        step, _ = framing.lines([line], releaser)
        out += (step or releaser.flush()).out
    step, finished = framing.lines([b'{"message":{"content":""},"done":true}'], releaser)
    assert finished and step is not None and step.stop is None
    out += step.out
    lines = [orjson.loads(b) for b in b"".join(out).splitlines()]
    text = "".join(line["message"]["content"] for line in lines)
    assert text == "Hi alice@example.com, also [EMAIL_REDACTED] bye"
    assert releaser.bypass  # the exploding scanner failed (at the end: it needs the whole text)
