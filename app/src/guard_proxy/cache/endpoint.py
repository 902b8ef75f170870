"""The short name of the Redis a cache talks to, for status lines and readiness reasons.

``host:port`` (``/db`` when not 0, IPv6 hosts in brackets); with Sentinels, the primary they
last named or that none is known. Never credentials. Needs no redis-py, so the facade can
name a Redis it has not connected to yet.
"""

from __future__ import annotations

from guard_proxy.config.settings import RedisSettings


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redis_endpoint(settings: RedisSettings, primary: tuple[str, int] | None = None) -> str:
    """Where ``settings`` point: ``host:port[/db]``, or the Sentinels' ``primary``."""
    db = f"/{settings.db}" if settings.db else ""
    if settings.sentinels:
        if not primary:
            return f"{settings.sentinel_service}{db} (no primary known)"
        return f"{hostport(*primary)}{db} (primary of {settings.sentinel_service})"
    return f"{hostport(settings.host, settings.port)}{db}"
