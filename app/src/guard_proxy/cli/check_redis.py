"""``guard-proxy check-redis``: say plainly whether Redis is usable with the configured settings.

Connects the way the cache does (host, port, db, ACL user, password, TLS, sentinels) with
retries off, then checks, one line each: TCP connect, AUTH, PING, server version, every
command the cache sends (on a probe key under the prefix, deleted afterwards) and the
maxmemory policy. Exit 0 when Redis is usable (warnings allowed), 1 on any failure. Never
prints a password. It is a diagnostic: the proxy itself starts on memory without Redis.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from guard_proxy.cache.redis_client import direct_client, hostport, scrub
from guard_proxy.cli import add_config_argument, load_or_report

if TYPE_CHECKING:
    from guard_proxy.config import RedisSettings, Settings

OK, FAIL, WARN = "ok   ", "FAIL ", "warn "
_EVICTING = (
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
_MIN_TIMEOUT = 1.0  # seconds; a diagnostic may wait longer than the cache does, and says so


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-redis",
        help="check that Redis is usable with the configured settings",
        description="Connect to Redis with the configured settings and report, one line "
        "each, TCP connect, AUTH, PING, server version, the commands the cache needs and the "
        "maxmemory policy. Exit 0 when Redis is usable, 1 otherwise.",
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    settings = load_or_report(args.config)
    if settings is None:
        return 1
    reason = _not_used_reason(settings)
    if reason is not None:
        print(f"Redis is not used: {reason}; nothing to check.")
        return 0
    report = _Report(secrets=_secrets_of(settings))
    try:
        asyncio.run(_check(settings, report))
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        return 130
    return report.finish()


def _not_used_reason(settings: Settings) -> str | None:
    if not settings.cache.enabled:
        return "the cache is disabled (cache.enabled=false)"
    if settings.cache.backend == "memory":
        return "the cache backend is memory (cache.backend=memory)"
    if not settings.redis.enabled:
        return "Redis is disabled (redis.enabled=false)"
    return None


def _secrets_of(settings: Settings) -> tuple[str, ...]:
    from guard_proxy.cache.redis_client import redis_secrets

    return redis_secrets(settings.redis, settings.access.admin_token)


class _Report:
    """Prints result lines with every secret masked; counts failures and warnings."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = secrets
        self.failures = 0
        self.warnings = 0

    def line(self, status: str, text: str, detail: object = None) -> None:
        """Print ``text``, then ``: detail`` (an error from outside, so secrets are masked)."""
        if status == FAIL:
            self.failures += 1
        elif status == WARN:
            self.warnings += 1
        if detail is not None:
            text = f"{text}: {scrub(str(detail), self._secrets)}"
        print(f"{status} {text}", flush=True)

    def finish(self) -> int:
        s = "" if self.warnings == 1 else "s"
        warnings = f", {self.warnings} warning{s}" if self.warnings else ""
        if self.failures:
            s = "" if self.failures == 1 else "s"
            print(f"Redis is NOT usable by guard-proxy: {self.failures} problem{s}{warnings}.")
            return 1
        print(f"Redis is usable by guard-proxy{warnings}.")
        return 0


def _describe(redis: RedisSettings, host: str, port: int) -> str:
    user = f"user {redis.username!r}" if redis.username else "default user"
    password = "password set" if redis.password else "no password"
    tls = "TLS on" if redis.tls else "TLS off"
    if redis.tls and not redis.tls_verify:
        tls += " (certificate NOT verified)"
    return f"{hostport(host, port)} db {redis.db}, {user}, {password}, {tls}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def _check(settings: Settings, report: _Report) -> None:
    redis = settings.redis
    host, port = redis.host, redis.port
    if redis.sentinels:
        print(
            f"check-redis: sentinels {', '.join(redis.sentinels)}, service "
            f"{redis.sentinel_service!r}, prefix {settings.cache.prefix!r}"
        )
        found = await _discover_master(redis, report)
        if found is None:
            return
        host, port = found
    print(f"check-redis: {_describe(redis, host, port)}, prefix {settings.cache.prefix!r}")
    if not await _tcp_connect(host, port, redis, report):
        return
    client: Any = direct_client(redis, host, port, min_timeout=_MIN_TIMEOUT)
    try:
        if not await _auth_and_ping(client, redis, report):
            return
        await _server_info(client, report)
        await _commands(client, settings.cache.prefix, report)
    finally:
        await client.aclose()


async def _discover_master(redis: RedisSettings, report: _Report) -> tuple[str, int] | None:
    """Ask every Sentinel for the primary; ok when one names it, warn for each that fails."""
    from redis.exceptions import RedisError

    from guard_proxy.cache.redis_client import sentinel_client

    found: tuple[str, int] | None = None
    problems: list[tuple[str, object]] = []
    for item in redis.sentinels:
        client: Any = sentinel_client(redis, item, min_timeout=_MIN_TIMEOUT)
        try:
            reply = await client.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", redis.sentinel_service
            )
        except RedisError as exc:
            problems.append((item, _first_line(exc)))
            continue
        finally:
            await client.aclose()
        if not reply:
            problems.append((item, f"does not know the service {redis.sentinel_service!r}"))
            continue
        address = (_text(reply[0]), int(reply[1]))
        if found is None:
            found = address
            report.line(
                OK,
                f"sentinel {item}: primary of {redis.sentinel_service!r} is {hostport(*address)}",
            )
        elif address != found:
            report.line(WARN, f"sentinel {item} names another primary: {hostport(*address)}")
    status = WARN if found is not None else FAIL
    for item, problem in problems:
        report.line(status, f"sentinel {item}", problem)
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _first_line(exc: BaseException) -> str:
    """An error's first line without the client repr redis-py sometimes appends."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(" : <redis.", 1)[0]


async def _tcp_connect(host: str, port: int, redis: RedisSettings, report: _Report) -> bool:
    import asyncio
    import contextlib
    import socket
    import time

    timeout = max(redis.socket_connect_timeout, _MIN_TIMEOUT)
    start = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except ConnectionRefusedError:
        report.line(
            FAIL,
            f"TCP connect {hostport(host, port)}: connection refused "
            "(is redis-server running and listening there?)",
        )
        return False
    except TimeoutError:
        report.line(
            FAIL,
            f"TCP connect {hostport(host, port)}: timed out after {timeout:g} s "
            "(firewall, wrong address, or a frozen server)",
        )
        return False
    except socket.gaierror as exc:
        report.line(FAIL, f"TCP connect {hostport(host, port)}: cannot resolve host", exc.strerror)
        return False
    except OSError as exc:
        report.line(FAIL, f"TCP connect {hostport(host, port)}", exc.strerror or exc)
        return False
    elapsed = time.perf_counter() - start
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    report.line(OK, f"TCP connect {hostport(host, port)} ({_ms(elapsed)})")
    if elapsed > redis.socket_connect_timeout:
        report.line(
            WARN,
            f"TCP connect took {_ms(elapsed)}, more than "
            f"redis.socket_connect_timeout ({_ms(redis.socket_connect_timeout)}): "
            "the proxy would give up and use memory",
        )
    return True


async def _auth_and_ping(client: Any, redis: RedisSettings, report: _Report) -> bool:
    """The first command opens the connection, which sends AUTH (when set) and SELECT."""
    import time

    from redis.exceptions import AuthenticationError, RedisError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    who = f"user {redis.username!r}" if redis.username else "the default user"
    try:
        await client.execute_command("PING")
    except AuthenticationError as exc:
        if redis.tls:
            report.line(OK, "TLS handshake")
        problem = _auth_problem(str(exc), who)
        if problem is None:
            report.line(FAIL, "AUTH", exc)
        else:
            report.line(FAIL, f"AUTH: {problem}")
        return False
    except RedisTimeoutError:
        hint = "frozen, overloaded or not Redis"
        if redis.tls:
            hint = "is this a TLS port? " + hint
        report.line(
            FAIL, f"PING: timed out (the server accepts connections but does not answer: {hint})"
        )
        return False
    except ResponseError as exc:
        text = str(exc)
        if "DB index" in text:
            report.line(FAIL, f"SELECT {redis.db} (check redis.db / REDIS_DB)", text)
        elif text.startswith("NOPERM") or "no permissions" in text:
            report.line(FAIL, "PING: denied by ACL (NOPERM)", text)
        else:
            report.line(FAIL, "PING", text)
        return False
    except RedisError as exc:
        what = "TLS handshake" if redis.tls and "SSL" in str(exc).upper() else "connect"
        report.line(FAIL, what, exc)
        return False
    start = time.perf_counter()
    try:
        await client.execute_command("PING")
    except RedisError as exc:
        report.line(FAIL, "PING", exc)
        return False
    elapsed = time.perf_counter() - start
    if redis.tls:
        report.line(OK, "TLS handshake")
    if redis.password:
        report.line(OK, f"AUTH as {who}")
    else:
        report.line(OK, "AUTH not needed (no password configured, the server asks for none)")
    if redis.db:
        report.line(OK, f"SELECT {redis.db}")
    report.line(OK, f"PING ({_ms(elapsed)})")
    return True


def _auth_problem(text: str, who: str) -> str | None:
    """A fixed explanation of a known AUTH error (never echoing the server text), or None."""
    if "Authentication required" in text:
        return (
            "NOAUTH: the server requires a password and none is configured "
            "(set redis.password, REDIS_PASSWORD or REDIS_PASSWORD_FILE)"
        )
    if "invalid username-password pair" in text or "WRONGPASS" in text:
        return (
            f"WRONGPASS: the server refused the configured password for {who} "
            "(wrong password, unknown or disabled user)"
        )
    if "without any password configured" in text:
        return (
            "a password is configured but the server has none for the default user "
            "(clear redis.password, or set requirepass / an ACL user on the server)"
        )
    return None


async def _server_info(client: Any, report: _Report) -> None:
    from redis.exceptions import RedisError

    try:
        info = await client.info("server")
    except RedisError as exc:
        report.line(FAIL, "INFO server", _command_error(exc))
        return
    version = info.get("redis_version", "unknown")  # Valkey reports 7.2.4 here, for clients
    # Valkey 8 names itself (valkey_version) and says server_mode where Redis says redis_mode.
    product, shown = ("Redis", version)
    if "valkey_version" in info:
        product, shown = ("Valkey", info["valkey_version"])
    mode = info.get("redis_mode") or info.get("server_mode") or "unknown"
    report.line(OK, f"server: {product} {shown} ({mode})")
    major = str(version).split(".", 1)[0]
    if major.isdigit() and int(major) < 6:
        report.line(WARN, f"Redis {version} has no ACLs and no UNLINK before 4.0; use 6.0 or newer")


def _command_error(exc: Exception) -> str:
    from redis.exceptions import NoPermissionError

    text = str(exc)
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
        return f"denied by ACL (NOPERM): {text}"
    return text


async def _commands(client: Any, prefix: str, report: _Report) -> None:
    """Runs every command the cache sends, on a probe key under the prefix, and cleans up."""
    import secrets as _random

    from redis.exceptions import RedisError

    from guard_proxy.cache.keys import glob_escape

    key = f"{prefix}check-redis:{_random.token_hex(8)}"
    match = glob_escape(prefix) + "*"  # as the cache's SCAN does
    value = b'{"check":"redis"}'
    report.line(OK, f"probe key {key}")
    steps: list[tuple[str, tuple[Any, ...], Any]] = [
        ("SET EX", ("SET", key, value, "EX", 60), lambda r: r in (True, b"OK", "OK")),
        ("GET", ("GET", key), lambda r: r == value),
        ("EXISTS", ("EXISTS", key), lambda r: r == 1),
        ("DEL", ("DEL", key), lambda r: r == 1),
        ("SET EX", ("SET", key, value, "EX", 60), lambda r: r in (True, b"OK", "OK")),
        ("UNLINK", ("UNLINK", key), lambda r: r == 1),
        ("SCAN", ("SCAN", 0, "MATCH", match, "COUNT", 100), lambda r: True),
    ]
    failed: set[str] = set()
    seen: set[str] = set()
    for name, command, is_good in steps:
        try:
            reply = await client.execute_command(*command)
        except RedisError as exc:
            failed.add(name)
            if name not in seen:
                report.line(FAIL, name, _command_error(exc))
            seen.add(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        # Without a stored probe value, a reply only shows that the command is allowed.
        if "SET EX" in failed or is_good(reply):
            report.line(OK, name if name != "SCAN" else f"SCAN MATCH {match}")
        else:
            failed.add(name)
            report.line(FAIL, f"{name}: unexpected reply", repr(reply))
    await _cleanup(client, key, failed, report)
    await _memory_policy(client, report)


async def _cleanup(client: Any, key: str, failed: set[str], report: _Report) -> None:
    from redis.exceptions import RedisError

    for command in ("UNLINK", "DEL"):
        if command in failed:
            continue
        try:
            await client.execute_command(command, key)
            return
        except RedisError:
            continue
    report.line(WARN, f"could not delete the probe key {key}; it expires within 60 s")


async def _memory_policy(client: Any, report: _Report) -> None:
    from redis.exceptions import RedisError

    try:
        info = await client.info("memory")
    except RedisError as exc:
        report.line(FAIL, "INFO", _command_error(exc))
        return
    report.line(OK, "INFO")
    policy = str(info.get("maxmemory_policy", "unknown"))
    maxmemory = int(info.get("maxmemory", 0) or 0)
    used = str(info.get("used_memory_human", info.get("used_memory", "?")))
    limit = str(info.get("maxmemory_human", maxmemory)) if maxmemory else "none"
    if policy not in _EVICTING:
        report.line(
            WARN,
            f"maxmemory-policy is {policy}: when maxmemory is reached Redis "
            "refuses writes instead of evicting old verdicts (use allkeys-lru)",
        )
    else:
        report.line(OK, f"maxmemory-policy {policy}")
    if not maxmemory:
        report.line(
            WARN,
            f"maxmemory is not set (used {used}): the cache can grow until the "
            "host runs out of memory (set maxmemory with an eviction policy)",
        )
    else:
        report.line(OK, f"memory used {used}, maxmemory {limit}")
