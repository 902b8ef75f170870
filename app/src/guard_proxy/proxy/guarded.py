"""The guarded routes: input scanned before Ollama is called, output scanned before it is sent.

Input: every text the model would read (see :mod:`guard_proxy.proxy.bodies`) is checked; a
block answers 400 in the route's format and Ollama is never called. Output: a complete
answer is scanned whole; a streamed one is relayed in its framing (NDJSON or SSE, picked
decided once from the content type and recorded on the request's info) through a
:class:`Releaser` (see
:mod:`guard_proxy.proxy.framing`). Ollama's non-200 answers pass through with their own
status and body; if Ollama breaks off a complete answer, nothing was sent yet and the client
gets 502 in the route's format. The request body goes upstream exactly as the client sent it,
unless a text holds values the guard redacts: then it goes with placeholders instead
(:mod:`guard_proxy.proxy.redact`; a body that cannot be rewritten safely is refused with 400),
the response says what was masked (``X-Guard-Redacted``), and the answer is rewritten on its
way out (placeholders restored, the model's own values masked), streamed or not.
"""

from __future__ import annotations

import orjson

from guard_proxy.exceptions import UpstreamError
from guard_proxy.guard import Direction, Guard
from guard_proxy.guard.redaction import Rewriter, Vault
from guard_proxy.proxy.asgi import ClientDisconnected, Receive, Scope, Send, read_body
from guard_proxy.proxy.bodies import BadRequest, parse_object, stream_flag
from guard_proxy.proxy.disconnect import run_until_disconnect
from guard_proxy.proxy.errors import block_body, send_error, send_json
from guard_proxy.proxy.framing import relay_stream
from guard_proxy.proxy.metrics import Metrics
from guard_proxy.proxy.passthrough import relay, upstream_failed
from guard_proxy.proxy.redact import (
    HEADER,
    RedactionPolicy,
    Unredactable,
    header_value,
    redact_body,
    rewrite_answer,
)
from guard_proxy.proxy.release import Releaser, Stop
from guard_proxy.proxy.shapes import Shape
from guard_proxy.proxy.state import RequestInfo, RequestVerdict, request_info
from guard_proxy.proxy.streamformat import StreamFormat, stream_format
from guard_proxy.proxy.upstream import (
    Upstream,
    UpstreamBroken,
    UpstreamResponse,
    forward_headers,
)
from guard_proxy.proxy.verdicts import Check, VerdictService

CACHE_HEADER = b"x-guard-cache"
FAILED_MESSAGE = "guard unavailable: a scanner failed and guard.fail_mode is closed"
SHED_MESSAGE = "guard busy: too many scans wait for a model thread; retry later"
BLOCKED = {
    Direction.INPUT: RequestVerdict.BLOCKED_INPUT,
    Direction.OUTPUT: RequestVerdict.BLOCKED_OUTPUT,
}


class Guarded:
    """An ASGI endpoint for one guarded route.

    **Parameters:**

    * **shape** - the route's :class:`Shape` (inputs, output text, stream default).
    * **upstream**, **guard**, **verdicts**, **metrics** - shared per app.
    * **redaction** - what is restored and masked in answers (nothing when not given).
    """

    def __init__(
        self,
        shape: Shape,
        upstream: Upstream,
        guard: Guard,
        verdicts: VerdictService,
        metrics: Metrics,
        redaction: RedactionPolicy | None = None,
    ) -> None:
        self.shape = shape
        self.upstream = upstream
        self.guard = guard
        self.verdicts = verdicts
        self.metrics = metrics
        self.redaction = redaction or RedactionPolicy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = request_info(scope)
        info.route = self.shape.route
        path: str = scope["path"]
        try:
            body = await read_body(receive)
        except ClientDisconnected:
            return
        try:
            data = parse_object(body)
            fields = self.shape.fields(data)
            texts = [f.text for f in fields]
            streamed = stream_flag(data, self.shape.stream_default)
        except BadRequest as exc:
            info.verdict = RequestVerdict.INVALID
            await send_error(send, path, 400, str(exc))
            return
        check = await self.verdicts.check(Direction.INPUT, texts)
        info.cache = check.cache
        cache_header = (CACHE_HEADER, check.cache.encode())
        if not check.allowed:
            await self._refuse(send, path, info, check, Direction.INPUT, cache_header)
            return
        extra = [cache_header]
        vault = Vault(self.redaction.restorable)
        if check.redacts:
            try:
                body = redact_body(data, fields, check.spans, vault)
            except Unredactable as exc:
                info.verdict = RequestVerdict.INVALID
                await send_error(send, path, 400, str(exc), headers=[cache_header])
                return
            counts = vault.counts()
            info.redacted = header_value(counts).decode()
            self.metrics.redacted(Direction.INPUT.value, counts)
            extra.append((HEADER, header_value(counts)))
        rewriter = self.redaction.rewriter(vault)
        info.verdict = RequestVerdict.ALLOWED
        headers = forward_headers(scope["headers"], identity=True)
        try:
            await run_until_disconnect(
                receive,
                self._exchange(
                    send,
                    path,
                    scope["query_string"],
                    headers,
                    body,
                    streamed,
                    info,
                    extra,
                    rewriter,
                ),
            )
        except ClientDisconnected:
            self.metrics.client_disconnect()
            info.verdict = info.verdict + ",client_gone"

    async def _refuse(
        self,
        send: Send,
        path: str,
        info: RequestInfo,
        check: Check,
        direction: Direction,
        cache_header: tuple[bytes, bytes],
    ) -> None:
        if check.failed:
            info.verdict = RequestVerdict.GUARD_FAILED
            headers = [cache_header]
            if check.shed:
                headers.append((b"retry-after", str(check.retry_after).encode()))
            await send_error(
                send,
                path,
                503,
                SHED_MESSAGE if check.shed else FAILED_MESSAGE,
                openai_type="api_error",
                code="guard_busy" if check.shed else "guard_unavailable",
                headers=headers,
            )
            return
        info.verdict = BLOCKED[direction]
        info.blocked_by = check.scanners
        body = block_body(path, direction.value, check.scanners)
        await send_json(send, 400, body, [cache_header])

    async def _exchange(
        self,
        send: Send,
        path: str,
        query: bytes,
        headers: list[tuple[str, str]],
        body: bytes,
        streamed: bool,
        info: RequestInfo,
        extra: list[tuple[bytes, bytes]],
        rewriter: Rewriter | None,
    ) -> None:
        try:
            response = await self.upstream.open(
                "POST", path, query, headers, body, streamed=streamed
            )
        except UpstreamError as exc:
            self.metrics.upstream_error()
            await upstream_failed(send, path, exc)
            return
        fmt = info.stream = stream_format(response.content_type)
        try:
            guarded = self.verdicts.active(Direction.OUTPUT) or rewriter is not None
            if response.status != 200 or not guarded:
                await relay(send, response, extra=extra)
            elif fmt is not None:
                await self._stream(send, path, response, fmt, info, extra, rewriter)
            else:
                try:
                    raw = await response.read()
                except UpstreamBroken as exc:
                    # Nothing was sent yet: answer 502 in the route's own format.
                    self._broken(info)
                    await upstream_failed(send, path, exc)
                    return
                await self._complete(send, path, response, raw, info, extra, rewriter)
        except UpstreamBroken:
            # Ollama broke the connection mid-answer; what was released stays released.
            self._broken(info)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    def _broken(self, info: RequestInfo) -> None:
        self.metrics.upstream_error()
        info.verdict = info.verdict + ",upstream_broken"

    async def _complete(
        self,
        send: Send,
        path: str,
        response: UpstreamResponse,
        raw: bytes,
        info: RequestInfo,
        extra: list[tuple[bytes, bytes]],
        rewriter: Rewriter | None,
    ) -> None:
        cache_header = extra[0]
        texts: list[str]
        try:
            obj = orjson.loads(raw)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            texts = self.shape.output_texts(obj)
        else:
            texts = [raw.decode("utf-8", "replace")]
        check = await self.verdicts.check(Direction.OUTPUT, texts)
        if not check.allowed:
            await self._refuse(send, path, info, check, Direction.OUTPUT, cache_header)
            return
        if isinstance(obj, dict):
            changed, masked = rewrite_answer(self.shape, obj, rewriter)
            if changed:
                raw = orjson.dumps(obj)
            self.metrics.redacted(Direction.OUTPUT.value, masked)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    *response.headers(rewritten=True),
                    (b"content-length", str(len(raw)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": raw})

    async def _stream(
        self,
        send: Send,
        path: str,
        response: UpstreamResponse,
        fmt: StreamFormat,
        info: RequestInfo,
        extra: list[tuple[bytes, bytes]],
        rewriter: Rewriter | None,
    ) -> None:
        releaser = Releaser(
            self.guard.stream(Direction.OUTPUT), self.shape, fmt, self.verdicts, rewriter
        )
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [*response.headers(rewritten=True), *extra],
            }
        )
        try:
            outcome = await relay_stream(send, response.chunks(), releaser, path)
        finally:
            self.metrics.redacted(Direction.OUTPUT.value, releaser.masked)
        if outcome.stop is Stop.BLOCKED and outcome.scanners is not None:
            info.verdict = BLOCKED[Direction.OUTPUT]
            info.blocked_by = outcome.scanners
            self.metrics.block(Direction.OUTPUT.value, outcome.scanners)
        elif outcome.stop is not None:
            info.verdict = RequestVerdict.GUARD_FAILED
