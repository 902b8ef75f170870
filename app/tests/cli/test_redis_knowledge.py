"""One owner of Redis knowledge: clients, addresses, secrets (``guard_proxy.cache.redis_client``).

The cache's backend and ``check-redis`` build their clients there (same TLS options, same
types); ``status`` and ``check-config`` render a Sentinel setup as the Sentinels' service,
not the static ``redis.host``/``redis.port`` that Sentinel mode ignores.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from guard_proxy_testing.cli import RunCli

from guard_proxy.cache.backends.redis import RedisBackend
from guard_proxy.cache.redis_client import (
    direct_client,
    redis_address,
    redis_endpoint,
    redis_secrets,
    scrub,
    sentinel_client,
)
from guard_proxy.cli.status import Snapshot, _redis_address
from guard_proxy.config import load_settings

SENTINEL_ENV = {
    "REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.2:26379",
    "REDIS_SENTINEL_SERVICE": "mymaster",
    "REDIS_HOST": "192.0.2.1",  # ignored: Sentinels decide
    "REDIS_DB": "2",
}
SENTINEL_FORM = "mymaster/2 via sentinels 10.0.0.1:26379,10.0.0.2:26379"


def test_addresses_static_and_sentinel() -> None:
    static = load_settings(None, {"REDIS_HOST": "::1", "REDIS_PORT": "6380"}).redis
    assert redis_address(static) == "[::1]:6380/0"
    assert redis_endpoint(static) == "[::1]:6380"
    sentinel = load_settings(None, SENTINEL_ENV).redis
    assert redis_address(sentinel) == SENTINEL_FORM
    assert redis_address(sentinel, ("10.0.0.9", 6379)) == "10.0.0.9:6379/2 (sentinel mymaster)"
    assert redis_endpoint(sentinel) == "mymaster/2 (no primary known)"
    assert redis_endpoint(sentinel, ("10.0.0.9", 6379)) == "10.0.0.9:6379/2 (primary of mymaster)"


def test_scrub_masks_every_secret() -> None:
    settings = load_settings(
        None, {"REDIS_PASSWORD": "pw-one", "REDIS_SENTINEL_PASSWORD": "pw-two"}
    ).redis
    secrets = redis_secrets(settings, "token-three", "")
    assert secrets == ("pw-one", "pw-two", "token-three")
    assert scrub("a pw-one b pw-two c token-three", secrets) == "a *** b *** c ***"


def _tls_env(verify: bool) -> dict[str, str]:
    return {"REDIS_TLS": "true", "REDIS_TLS_VERIFY": "true" if verify else "false"}


@pytest.mark.parametrize("verify", [True, False])
def test_backend_and_check_redis_build_the_same_tls_client(verify: bool) -> None:
    settings = load_settings(None, _tls_env(verify)).redis
    wanted = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE

    async def build() -> tuple[dict[str, object], dict[str, object]]:
        backend = RedisBackend(settings)
        client = direct_client(settings, "127.0.0.1", 6379, min_timeout=1.0)
        try:
            return dict(backend.pool.connection_kwargs), dict(
                client.connection_pool.connection_kwargs
            )
        finally:
            await client.aclose()
            await backend.aclose()

    cache_kwargs, cli_kwargs = asyncio.run(build())
    for kwargs in (cache_kwargs, cli_kwargs):
        assert kwargs["ssl_cert_reqs"] is wanted
        assert kwargs["ssl_check_hostname"] is verify
        assert kwargs["protocol"] == 2
        assert kwargs["driver_info"] is None


def test_sentinel_client_uses_the_sentinel_credentials() -> None:
    settings = load_settings(
        None, {**SENTINEL_ENV, "REDIS_SENTINEL_PASSWORD": "s-pw", "REDIS_PASSWORD": "d-pw"}
    ).redis
    client = sentinel_client(settings, "[::1]:26379")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["password"]) == ("::1", 26379, "s-pw")
    asyncio.run(client.aclose())


def test_status_from_config_shows_the_sentinels() -> None:
    """Before: ``192.0.2.1:6379/2 (from config)``, an address Sentinel mode never uses."""
    settings = load_settings(None, SENTINEL_ENV)
    snap = Snapshot(url="http://127.0.0.1:1", answered=True)
    assert _redis_address(snap, settings) == f"{SENTINEL_FORM} (from config)"


def test_check_config_shows_the_sentinels(run_cli: RunCli) -> None:
    """Before: ``cache auto (redis 192.0.2.1:6379/2)``."""
    result = run_cli("check-config", env=SENTINEL_ENV)
    assert result.returncode == 0, str(result)
    assert result.stdout.rstrip().endswith(f"cache auto (redis {SENTINEL_FORM})"), str(result)


def test_check_config_static_address_unchanged(run_cli: RunCli) -> None:
    result = run_cli("check-config", env={"REDIS_HOST": "redis.example", "REDIS_PORT": "6390"})
    assert result.returncode == 0, str(result)
    assert result.stdout.rstrip().endswith("cache auto (redis redis.example:6390/0)"), str(result)


def test_a_missing_subcommand_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every subcommand ships with the package: a missing one fails loudly, never skipped."""
    import guard_proxy.cli as cli

    monkeypatch.setattr(cli, "_COMMANDS", (*cli._COMMANDS, "guard_proxy.cli.no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        cli.build_parser()


def test_one_module_builds_clients_renders_addresses_and_scrubs() -> None:
    """No second copy grows back: redis-py clients, the Sentinel form, ``***`` live in one place."""
    from pathlib import Path

    import guard_proxy

    owner = Path(guard_proxy.__file__).parent / "cache" / "redis_client.py"
    needles = ("Redis(", "ConnectionPool(", "Sentinel(", "via sentinels", '"***"', "ssl_cert_reqs")
    found = [
        f"{path.name}: {needle}"
        for path in Path(guard_proxy.__file__).parent.rglob("*.py")
        if path != owner
        for needle in needles
        if needle in path.read_text()
    ]
    assert found == []
