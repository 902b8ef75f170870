"""The client-key layer on the request path: who is asking, may they, and what they used.

For every proxied route (the proxy's own endpoints are left to the access middleware):

1. An address with too many failed key attempts in its current minute gets 429 before its
   key is even looked at (``access.keys.failed_attempts_per_minute``, per process).
2. The key (:mod:`.credentials`): in the URL -> 400; missing, malformed, empty or unknown
   -> 401 with ``WWW-Authenticate``; each counts as a failed attempt of the address.
3. The limits (:mod:`.limits`): over one -> 429 with ``Retry-After``.
4. When the answer ends, however it ends, its tokens are added to the key's windows and
   its stream lease is returned: in Redis by a task of its own, after the answer (the
   client does not wait for it); in this process at once.

Errors are in the route's own format (``{"error": "..."}`` on ``/api``, OpenAI's object on
``/v1``); the request log and metrics name their route ``unauthorized`` (400/401) or
``rate_limited`` (429), as the access middleware names its refusals ``denied``. The key's
name goes to the request log (``RequestInfo.key``) and the metrics; the key goes nowhere.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Collection

from guard_proxy.keys.credentials import Refusal, presented_key
from guard_proxy.keys.limits import Decision, KeyLimits
from guard_proxy.keys.store import KeyRecord, KeyStore
from guard_proxy.keys.tokens import TokenCounter
from guard_proxy.keys.usage import KeyUsage
from guard_proxy.proxy.asgi import ASGIApp, Message, Receive, Scope, Send
from guard_proxy.proxy.errors import send_error
from guard_proxy.proxy.state import request_info

__all__ = ["FailedAttempts", "KeysMiddleware"]

logger = logging.getLogger("guard_proxy.keys")

_CHALLENGE = (b"www-authenticate", b'Bearer realm="guard-proxy"')
_FLOOD_TABLE_SIZE = 65536


class FailedAttempts:
    """Failed key attempts per source address in fixed one-minute windows (this process)."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self.by_address: dict[str, tuple[int, float]] = {}

    def wait(self, address: str) -> int:
        """Seconds until ``address`` may try again (0: it may now)."""
        entry = self.by_address.get(address)
        if entry is None:
            return 0
        count, ends = entry
        now = time.monotonic()
        if now >= ends:
            del self.by_address[address]
            return 0
        return max(1, math.ceil(ends - now)) if count >= self.per_minute else 0

    def fail(self, address: str) -> None:
        now = time.monotonic()
        count, ends = self.by_address.get(address, (0, 0.0))
        if now >= ends:
            if len(self.by_address) >= _FLOOD_TABLE_SIZE:
                self._sweep(now)
            count, ends = 0, now + self.window
        self.by_address[address] = (count + 1, ends)

    def _sweep(self, now: float) -> None:
        self.by_address = {a: e for a, e in self.by_address.items() if e[1] > now}


class KeysMiddleware:
    """See the module docstring. ``generation`` are the routes that hold a stream slot."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: KeyStore,
        limits: KeyLimits,
        usage: KeyUsage,
        header: str,
        failed_per_minute: int,
        exempt: Collection[str],
        generation: Collection[str],
    ) -> None:
        self.app = app
        self.store = store
        self.limits = limits
        self.usage = usage
        self.header = header.lower().encode("latin-1")
        self.failures = FailedAttempts(failed_per_minute)
        self.exempt = frozenset(exempt)
        self.generation = frozenset(generation)
        self.pending: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        info = request_info(scope)
        wait = self.failures.wait(info.client)
        if wait:
            info.route = "rate_limited"
            self.usage.rejected.labels("flood").inc()
            await send_error(
                send,
                path,
                429,
                "too many failed API key attempts from this address; try again later",
                openai_type="requests",
                code="rate_limit_exceeded",
                headers=[(b"retry-after", str(wait).encode())],
            )
            return
        key = presented_key(scope, self.header)
        if isinstance(key, Refusal):
            info.route = "unauthorized"
            await self._refuse(send, path, info.client, key)
            return
        record = self.store.table.lookup(key)
        if record is None:
            info.route = "unauthorized"
            await self._refuse(send, path, info.client, Refusal(401, "invalid API key", "wrong"))
            return
        info.key = record.name
        decision = await self.limits.admit(record.name, record.limits, path in self.generation)
        if not decision.admitted:
            info.route = "rate_limited"
            await self._limited(send, path, record, decision)
            return
        self.usage.of(record.name).requests.inc()
        await self._serve(scope, receive, send, record, decision)

    async def _refuse(self, send: Send, path: str, client: str, refusal: Refusal) -> None:
        self.usage.rejected.labels(refusal.reason).inc()
        if refusal.status == 401:
            self.failures.fail(client)
        await send_error(
            send,
            path,
            refusal.status,
            refusal.message,
            code="invalid_api_key" if refusal.status == 401 else "invalid_request",
            headers=[_CHALLENGE] if refusal.status == 401 else (),
        )

    async def _limited(self, send: Send, path: str, record: KeyRecord, d: Decision) -> None:
        assert d.limit is not None
        self.usage.limited.labels(record.name, d.limit).inc()
        value = getattr(record.limits, d.limit)
        where = "" if d.shared else " (counted in this proxy while Redis is unavailable)"
        await send_error(
            send,
            path,
            429,
            f"rate limit exceeded for key {record.name!r}: {d.limit} is {value}{where}",
            openai_type="tokens" if d.limit.startswith("tokens") else "requests",
            code="rate_limit_exceeded",
            headers=[(b"retry-after", str(d.retry_after).encode())],
        )

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, record: KeyRecord, decision: Decision
    ) -> None:
        counter: TokenCounter | None = None

        async def counting_send(message: Message) -> None:
            nonlocal counter
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    counter = TokenCounter(_is_sse(message))
            elif counter is not None and message["type"] == "http.response.body":
                body = message.get("body", b"")
                if body:
                    counter.feed(body)
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            tokens_in, tokens_out = counter.counts() if counter is not None else (0, 0)
            self._finish(record, decision, tokens_in, tokens_out, request_info(scope).verdict)

    def _finish(
        self, record: KeyRecord, decision: Decision, tokens_in: int, tokens_out: int, verdict: str
    ) -> None:
        """Count the answer; its Redis update runs after it, off the request's path."""
        counters = self.usage.of(record.name)
        if tokens_in:
            counters.tokens_in.inc(tokens_in)
        if tokens_out:
            counters.tokens_out.inc(tokens_out)
        if verdict.startswith("blocked"):
            counters.blocked.inc()
        tokens = tokens_in + tokens_out
        if not decision.shared:
            self.limits.local.record(record.name, tokens, decision.lease)
        elif tokens > 0 or decision.lease:
            task = asyncio.create_task(self._record(record.name, decision, tokens))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _record(self, name: str, decision: Decision, tokens: int) -> None:
        try:
            await self.limits.record(name, decision, tokens)
        except Exception:  # accounting must never fail the answer
            logger.exception("keys: recording the usage of key %s failed", name)

    async def drain(self) -> None:
        """Wait for the usage updates still on their way to Redis (at shutdown)."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=2.0)


def _is_sse(message: Message) -> bool:
    for name, value in message.get("headers") or ():
        if name.lower() == b"content-type":
            return b"event-stream" in value
    return False
