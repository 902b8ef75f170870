"""Put the client-key layer in front of an app, from settings (used by the app factory)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from guard_proxy.config import Settings
from guard_proxy.keys.limits import KeyLimits
from guard_proxy.keys.middleware import KeysMiddleware
from guard_proxy.keys.store import KeyStore
from guard_proxy.keys.usage import KeyUsage, MetricsAppender
from guard_proxy.proxy.asgi import ASGIApp

__all__ = ["ClientKeys"]


@dataclass
class ClientKeys:
    """The keys file, the limits and the usage counters of one app; started by its lifespan."""

    store: KeyStore
    limits: KeyLimits
    usage: KeyUsage
    layer: KeysMiddleware | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientKeys:
        keys = settings.access.keys
        limits = KeyLimits(
            keys,
            settings.redis,
            workers=settings.server.workers,
            use_redis=settings.redis.enabled,
        )
        store = KeyStore(keys.file, keys.reload_interval)
        usage = KeyUsage()
        usage.keys.set_function(lambda: len(store.table))
        usage.shared.set_function(lambda: 1 if limits.shared else 0)
        return cls(store, limits, usage)

    def protect(
        self,
        app: ASGIApp,
        settings: Settings,
        *,
        exempt: Collection[str],
        generation: Collection[str],
    ) -> ASGIApp:
        keys = settings.access.keys
        self.layer = KeysMiddleware(
            app,
            store=self.store,
            limits=self.limits,
            usage=self.usage,
            header=keys.header,
            failed_per_minute=keys.failed_attempts_per_minute,
            exempt=exempt,
            generation=generation,
        )
        return self.layer

    def with_metrics(self, own: ASGIApp) -> ASGIApp:
        """``own`` (the app answering ``/metrics``) with the per-key counters appended."""
        return MetricsAppender(own, self.usage)

    async def start(self) -> None:
        self.store.start()
        await self.limits.start()

    async def aclose(self) -> None:
        if self.layer is not None:
            await self.layer.drain()
        try:
            await self.store.aclose()
        finally:
            await self.limits.aclose()
