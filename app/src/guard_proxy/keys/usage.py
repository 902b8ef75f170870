"""Per-key counters for ``/metrics``, in a registry of their own (prometheus_client).

Kept apart from :mod:`guard_proxy.proxy.metrics` on purpose: :class:`MetricsAppender` adds
this registry's text to whatever ``/metrics`` answers, so the two can change independently.
Labels are key *names* and fixed words; never a key, never a client address. With several
workers (``$PROMETHEUS_MULTIPROC_DIR`` set) the counters live in the workers' shared files
like the proxy's own, and the proxy's ``MultiProcessCollector`` exports them merged: then
nothing is appended (it would repeat them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from guard_proxy.proxy.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["KeyCounters", "KeyUsage", "MetricsAppender"]


@dataclass(frozen=True, slots=True)
class KeyCounters:
    """One key's labelled counters, looked up once per key name."""

    requests: Counter
    tokens_in: Counter
    tokens_out: Counter
    blocked: Counter


class KeyUsage:
    """What each key did: requests, tokens in and out, guard blocks, limit refusals."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "guard_proxy_key_requests",
            "Requests admitted per client key",
            ["key"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "guard_proxy_key_tokens",
            "Model tokens per client key (direction: in = prompt, out = generated)",
            ["key", "direction"],
            registry=self.registry,
        )
        self.blocked = Counter(
            "guard_proxy_key_blocked",
            "Requests of a client key blocked by the guard",
            ["key"],
            registry=self.registry,
        )
        self.limited = Counter(
            "guard_proxy_key_limited",
            "Requests of a client key refused with 429, by the limit that refused them",
            ["key", "limit"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "guard_proxy_key_auth_failures",
            "Requests refused for their key (missing, malformed, empty, wrong, in the URL) "
            "or for too many failed attempts from their address (flood)",
            ["reason"],
            registry=self.registry,
        )
        self.shared = Gauge(
            "guard_proxy_key_limits_shared",
            "1 while the key limits are counted in Redis, 0 while counted per process",
            registry=self.registry,
            multiprocess_mode="livemin",  # workers: 0 while any live worker falls back
        )
        self.keys = Gauge(
            "guard_proxy_keys_loaded",
            "Client keys in the keys file's current version",
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self._by_key: dict[str, KeyCounters] = {}

    def of(self, name: str) -> KeyCounters:
        """The counters of key ``name``."""
        counters = self._by_key.get(name)
        if counters is None:
            counters = self._by_key[name] = KeyCounters(
                self.requests.labels(name),
                self.tokens.labels(name, "in"),
                self.tokens.labels(name, "out"),
                self.blocked.labels(name),
            )
        return counters

    def render(self) -> bytes:
        """This registry's text; empty with workers (the merged export already holds it)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return b""
        return generate_latest(self.registry)


class MetricsAppender:
    """Wrap the app answering ``path``: append :class:`KeyUsage`'s text to a 200 answer."""

    def __init__(self, app: ASGIApp, usage: KeyUsage, path: str = "/metrics") -> None:
        self.app = app
        self.usage = usage
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        parts: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False) and start is not None:
                    await self._finish(send, start, b"".join(parts))

        await self.app(scope, receive, collect)

    async def _finish(self, send: Send, start: Message, body: bytes) -> None:
        if start["status"] == 200:
            if body and not body.endswith(b"\n"):
                body += b"\n"
            body += self.usage.render()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
