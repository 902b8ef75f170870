"""Everything the proxy knows about talking to Redis, written once.

* **Addresses**: :func:`redis_address` (``host:port/db``; with Sentinels the primary they
  named, or ``<service>/<db> via sentinels host:port,...`` while none is known) and the short
  :func:`redis_endpoint` of status lines and readiness reasons. Never credentials.
* **Secrets**: :func:`redis_secrets` and :func:`scrub`, which masks them in any text.
* **Clients**: :func:`connection_kwargs` / :func:`sentinel_kwargs` (timeouts, no retries,
  RESP2, TLS), :func:`build_pool` (plain, TLS or Sentinel, as the cache's backend uses it),
  :func:`direct_client` and :func:`sentinel_client` (one connection each, as
  ``guard-proxy check-redis`` uses them).

redis-py is imported inside the client builders only: the facade names a Redis, and the CLI
starts, without loading it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from guard_proxy.config.settings import RedisSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.connection import ConnectionPool
    from redis.asyncio.sentinel import Sentinel

__all__ = [
    "build_pool",
    "connection_kwargs",
    "direct_client",
    "hostport",
    "parse_hostport",
    "pooled_client",
    "redis_address",
    "redis_endpoint",
    "redis_secrets",
    "scrub",
    "sentinel_client",
    "sentinel_kwargs",
    "tls_kwargs",
]

# ---------------------------------------------------------------------------- addresses


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_hostport(item: str) -> tuple[str, int]:
    """``("host", port)`` of ``host:port`` or ``[v6]:port`` (a ``redis.sentinels`` item)."""
    host, _, port = item.rpartition(":")
    return host.strip("[]"), int(port)


def redis_address(settings: RedisSettings, primary: tuple[str, int] | None = None) -> str:
    """Where ``settings`` point, long form; never credentials.

    Static: ``host:port/db``. Sentinels: ``host:port/db (sentinel <service>)`` for the
    ``primary`` they named, else ``<service>/<db> via sentinels host:port,...``.
    """
    db = settings.db
    if settings.sentinels:
        service = settings.sentinel_service
        if primary:
            return f"{hostport(*primary)}/{db} (sentinel {service})"
        return f"{service}/{db} via sentinels {','.join(settings.sentinels)}"
    return f"{hostport(settings.host, settings.port)}/{db}"


def redis_endpoint(settings: RedisSettings, primary: tuple[str, int] | None = None) -> str:
    """Where ``settings`` point, short: ``host:port[/db]``, or the Sentinels' ``primary``."""
    db = f"/{settings.db}" if settings.db else ""
    if settings.sentinels:
        if not primary:
            return f"{settings.sentinel_service}{db} (no primary known)"
        return f"{hostport(*primary)}{db} (primary of {settings.sentinel_service})"
    return f"{hostport(settings.host, settings.port)}{db}"


# ---------------------------------------------------------------------------- secrets


def redis_secrets(settings: RedisSettings, *more: str) -> tuple[str, ...]:
    """The Redis and Sentinel passwords (and ``more``, e.g. the admin token) that are set."""
    return tuple(s for s in (settings.password, settings.sentinel_password, *more) if s)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# ---------------------------------------------------------------------------- clients


def tls_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """redis-py's TLS options from ``redis.tls_*`` (one setting for Sentinels and servers).

    Verification is the same on every Python: strict X.509 checks and partial chains, the
    defaults of Python 3.13's ``ssl.create_default_context`` (3.11 has neither), so a CA
    without key usage is refused on Debian 12's Python as on Debian 13's."""
    import ssl

    return {
        "ssl_ca_certs": settings.tls_ca_file or None,
        "ssl_certfile": settings.tls_cert_file or None,
        "ssl_keyfile": settings.tls_key_file or None,
        "ssl_cert_reqs": ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
        "ssl_check_hostname": settings.tls_verify,
        "ssl_include_verify_flags": (
            [ssl.VERIFY_X509_STRICT, ssl.VERIFY_X509_PARTIAL_CHAIN] if settings.tls_verify else None
        ),
    }


def _no_retry() -> Any:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 0)


def connection_kwargs(settings: RedisSettings, *, min_timeout: float = 0.0) -> dict[str, Any]:
    """Options of a connection to a Redis server (not a Sentinel); no ``ssl`` flag.

    Retries are off: a retry against a dead server only multiplies the stall. ``min_timeout``
    lets a diagnostic wait longer than the cache does.
    """
    kwargs: dict[str, Any] = {
        "db": settings.db,
        "username": settings.username or None,
        "password": settings.password or None,
        "socket_timeout": max(settings.socket_timeout, min_timeout),
        "socket_connect_timeout": max(settings.socket_connect_timeout, min_timeout),
        "socket_keepalive": True,
        "retry": _no_retry(),
        "retry_on_error": [],
        "health_check_interval": 0,
        "driver_info": None,  # no CLIENT SETINFO round trips on connect
        # redis-py 8 defaults to RESP3 plus "maintenance notifications" in mode "auto",
        # and that truthy "auto" disables the pool's check for dead idle connections:
        # after a Redis restart the first call would fail on a stale socket. RESP2, off.
        "protocol": 2,
    }
    if settings.tls:
        kwargs.update(tls_kwargs(settings))
    return kwargs


def sentinel_kwargs(settings: RedisSettings, *, min_timeout: float = 0.0) -> dict[str, Any]:
    """Options of a connection to a Sentinel (its own ACL user and password; TLS when set)."""
    kwargs: dict[str, Any] = {
        "username": settings.sentinel_username or None,
        "password": settings.sentinel_password or None,
        "socket_timeout": max(settings.socket_timeout, min_timeout),
        "socket_connect_timeout": max(settings.socket_connect_timeout, min_timeout),
        "retry": _no_retry(),
        "driver_info": None,
        "protocol": 2,
    }
    if settings.tls:  # one TLS setting for the Sentinels and the servers they name
        kwargs.update(tls_kwargs(settings), ssl=True)
    return kwargs


def build_pool(settings: RedisSettings) -> tuple[ConnectionPool, Sentinel | None]:
    """The cache's pool: plain, TLS, or asking the Sentinels on each new connection.

    The pool itself never refuses (``max_connections`` is bounded in front of it by the
    caller): MaxConnectionsError would look like a server failure.
    """
    from redis.asyncio.connection import Connection, ConnectionPool, SSLConnection
    from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
    from redis.maint_notifications import MaintNotificationsConfig

    no_maint = MaintNotificationsConfig(enabled=False)
    kwargs = connection_kwargs(settings)
    if settings.sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [parse_hostport(item) for item in settings.sentinels],
            sentinel_kwargs=sentinel_kwargs(settings),
        )
        if settings.tls:
            kwargs["ssl"] = True  # SentinelConnectionPool picks its SSL connection class
        pool: ConnectionPool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            settings.sentinel_service,
            sentinel,
            max_connections=settings.max_connections,
            maint_notifications_config=no_maint,
            **kwargs,
        )
        return pool, sentinel
    kwargs["connection_class"] = SSLConnection if settings.tls else Connection
    pool = ConnectionPool(
        host=settings.host,
        port=settings.port,
        max_connections=settings.max_connections,
        maint_notifications_config=no_maint,
        **kwargs,
    )
    return pool, None


def pooled_client(pool: ConnectionPool) -> Redis:
    """The cache's client: every call takes a connection from ``pool`` (:func:`build_pool`)."""
    import redis.asyncio as aioredis

    return aioredis.Redis(connection_pool=pool)


def direct_client(
    settings: RedisSettings, host: str, port: int, *, min_timeout: float = 0.0
) -> Redis:
    """One connection to the server at ``host:port`` with the cache's options."""
    import redis.asyncio as aioredis

    kwargs = connection_kwargs(settings, min_timeout=min_timeout)
    if settings.tls:
        kwargs["ssl"] = True
    return aioredis.Redis(host=host, port=port, single_connection_client=True, **kwargs)


def sentinel_client(settings: RedisSettings, item: str, *, min_timeout: float = 0.0) -> Redis:
    """A client of the Sentinel ``item`` (``host:port``) with the cache's Sentinel options."""
    import redis.asyncio as aioredis

    host, port = parse_hostport(item)
    return aioredis.Redis(
        host=host, port=port, **sentinel_kwargs(settings, min_timeout=min_timeout)
    )
