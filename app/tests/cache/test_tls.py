"""TLS to Redis: the settings reach redis-py, and a certificate problem means memory, not errors."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from guard_proxy_testing.caches import RELAXED, CacheFactory
from guard_proxy_testing.redis_server import LEAF_EXTENSIONS, RedisServer

VERDICT = {"allowed": True}


@pytest.fixture
def tls_server() -> Iterator[RedisServer]:
    server = RedisServer(tls=True).start()
    try:
        yield server
    finally:
        server.close()


async def compute() -> dict[str, Any]:
    return dict(VERDICT)


async def test_tls_with_ca(make_cache: CacheFactory, tls_server: RedisServer) -> None:
    cache = await make_cache(redis=tls_server.settings(**RELAXED))
    assert cache.active_backend == "redis"
    key = cache.key("input", "cfg", "x")
    assert (await cache.get_or_compute(key, compute))[1] == "miss"
    assert (await cache.get_or_compute(key, compute))[1] == "hit"
    with tls_server.client() as client:
        assert client.exists(key) == 1


async def test_tls_unknown_ca_is_refused(make_cache: CacheFactory, tls_server: RedisServer) -> None:
    cache = await make_cache(
        redis=tls_server.settings(tls_ca_file="", probe_interval=3600, **RELAXED)
    )
    assert cache.active_backend == "memory"
    assert "certificate" in (cache.last_error or "").lower()
    assert (await cache.get_or_compute(cache.key("input", "c", "x"), compute))[1] == "miss"


async def test_tls_without_verification(make_cache: CacheFactory, tls_server: RedisServer) -> None:
    cache = await make_cache(redis=tls_server.settings(tls_ca_file="", tls_verify=False, **RELAXED))
    assert cache.active_backend == "redis"


async def test_plain_client_against_tls_port(
    make_cache: CacheFactory, tls_server: RedisServer
) -> None:
    cache = await make_cache(redis=tls_server.settings(tls=False, probe_interval=3600, **RELAXED))
    assert cache.active_backend == "memory"
    assert (await cache.get_or_compute(cache.key("input", "c", "x"), compute))[1] == "miss"


async def test_a_ca_without_key_usage_is_refused_on_every_python(
    make_cache: CacheFactory, tls_server: RedisServer, tmp_path: Path
) -> None:
    """Strict X.509 verification is the app's, not the Python's: a CA made with `openssl req
    -x509` alone (no key usage) is refused on Python 3.11 as on 3.13 (whose default it is)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *key, "-keyout", "lax.key", "-out", "lax.crt", "-days", "2",
            "-subj", "/CN=lax CA")  # fmt: skip
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (tmp_path / "san.cnf").write_text(f"subjectAltName=IP:127.0.0.1\n{LEAF_EXTENSIONS}")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "lax.crt", "-CAkey", "lax.key",
            "-CAcreateserial", "-out", "server.crt", "-extfile", "san.cnf")  # fmt: skip
    with tls_server.client() as client:  # the server now presents a certificate of the lax CA
        client.execute_command(
            "CONFIG", "SET", "tls-cert-file", str(tmp_path / "server.crt"),
            "tls-key-file", str(tmp_path / "server.key"),
        )  # fmt: skip
    cache = await make_cache(
        redis=tls_server.settings(
            tls_ca_file=str(tmp_path / "lax.crt"), probe_interval=3600, **RELAXED
        )
    )
    assert cache.active_backend == "memory"
    assert "key usage" in (cache.last_error or "").lower()
