"""TLS end to end (redis_tls_enabled, throw-away CA from the controller): Redis and the
Sentinels answer over TLS only, replicas and Sentinels talk TLS among themselves, the
proxy verifies the servers' certificates and host names and serves cache hits from Redis."""

from __future__ import annotations

import uuid
from typing import Any

from gplib import FLAVOUR, PROXY_UNIT, proxy_config, redis_cli, redis_tls_args, wait_for
from sentinel_lib import (
    SENTINEL_CONF,
    SENTINEL_PORT,
    address,
    cache_health,
    cache_stats,
    generate,
    replication,
    sentinel,
)

REDIS_PORT = 6379
TLS_DIR = f"{FLAVOUR.conf_dir}/tls"
PROXY_CA = "/etc/guard-proxy/tls/redis-ca.crt"

# A TLS handshake from inside a host (python3's ssl; the image has no openssl CLI).
# argv: host port cafile server_hostname; prints "verified <subject CN>" or the error.
_HANDSHAKE = r"""
import socket, ssl, sys
host, port, cafile, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
try:
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            subject = dict(x[0] for x in tls.getpeercert()["subject"])
            print("verified", subject.get("commonName", "?"))
except Exception as exc:
    print("failed", type(exc).__name__, str(exc)[:200])
"""


def _plain_ping(host: Any, port: int) -> Any:
    return host.run(f"timeout 5 {FLAVOUR.cli} -h 127.0.0.1 -p %s PING", str(port))


def test_plain_text_is_refused_on_redis_and_sentinel_ports(redis_hosts: list[Any]) -> None:
    """No plain-text listener: the CLI without --tls gets an error, neither PONG nor NOAUTH."""
    for host in redis_hosts:
        for port in (REDIS_PORT, SENTINEL_PORT):
            out = _plain_ping(host, port)
            text = out.stdout + out.stderr
            assert "PONG" not in text and "NOAUTH" not in text, (host.backend.name, port, text)
            assert out.rc != 0, (host.backend.name, port, text)


def test_tls_with_the_ca_alone_works(
    redis_hosts: list[Any], proxy_creds: tuple[str, str], sentinel_password: str
) -> None:
    """`--tls --cacert` (no client certificate: tls-auth-clients optional) reaches both."""
    for host in redis_hosts:
        noauth = host.run(
            f"{FLAVOUR.cli} -h 127.0.0.1 -p %s --tls --cacert {TLS_DIR}/ca.crt PING", str(REDIS_PORT)
        )
        assert "NOAUTH" in noauth.stdout + noauth.stderr, noauth.stdout + noauth.stderr
        noauth = host.run(
            f"{FLAVOUR.cli} -h 127.0.0.1 -p %s --tls --cacert {TLS_DIR}/ca.crt PING", str(SENTINEL_PORT)
        )
        assert "NOAUTH" in noauth.stdout + noauth.stderr, noauth.stdout + noauth.stderr
        pong = redis_cli(host, "PING", user=proxy_creds[0], password=proxy_creds[1])
        assert pong.stdout.strip() == "PONG", pong.stdout + pong.stderr


def test_redis_and_sentinel_configs_say_tls(redis_hosts: list[Any]) -> None:
    for host in redis_hosts:
        for path, port in ((FLAVOUR.conf, REDIS_PORT), (SENTINEL_CONF, SENTINEL_PORT)):
            lines = host.file(path).content_string.splitlines()
            assert "port 0" in lines, path
            assert f"tls-port {port}" in lines, path
            assert "tls-auth-clients optional" in lines, path
        assert "tls-replication yes" in host.file(SENTINEL_CONF).content_string.splitlines()
        replication_conf = host.file(f"{FLAVOUR.conf_dir}/replication.conf").content_string
        assert "tls-replication yes" in replication_conf.splitlines()
        assert redis_tls_args(host), host.backend.name


def test_tls_files_and_modes(redis_hosts: list[Any]) -> None:
    for host in redis_hosts:
        d = host.file(TLS_DIR)
        assert (d.user, d.group, d.mode) == ("root", FLAVOUR.user, 0o750)
        key = host.file(f"{TLS_DIR}/redis.key")
        assert (key.user, key.group, key.mode) == (FLAVOUR.user, FLAVOUR.user, 0o400)
        for name in ("ca.crt", "redis.crt"):
            f = host.file(f"{TLS_DIR}/{name}")
            assert (f.user, f.group, f.mode) == ("root", FLAVOUR.user, 0o640), name
            assert f.content_string.startswith("-----BEGIN CERTIFICATE-----"), name


def test_replicas_and_sentinels_work_over_tls(
    redis_hosts: list[Any], proxy_creds: tuple[str, str], sentinel_password: str
) -> None:
    """With no plain-text port, a synced replica and Sentinels that know their peers prove
    that replication and Sentinel traffic run over TLS."""
    roles = [replication(h, proxy_creds) for h in redis_hosts]
    assert sorted(r["role"] for r in roles) == ["master", "slave", "slave"], roles
    assert all(r["master_link_status"] == "up" for r in roles if r["role"] == "slave"), roles
    for host in redis_hosts:
        out = sentinel(host, sentinel_password, "SENTINEL MASTER mymaster")
        fields = dict(zip(out.stdout.split()[::2], out.stdout.split()[1::2], strict=False))
        assert fields.get("num-other-sentinels") == "2", out.stdout
        assert fields.get("num-slaves") == "2", out.stdout
        assert "s_down" not in fields.get("flags", ""), out.stdout


def test_server_certificates_name_their_addresses(proxy_host: Any, redis_hosts: list[Any]) -> None:
    """From the proxy host, with the proxy's CA file: each Redis and Sentinel certificate is
    verified for the IP address the Sentinels announce and the host name the proxy uses,
    and refused for any other name (host name checking is on)."""
    for host in redis_hosts:
        ip, name = address(host), host.backend.name
        for port in (REDIS_PORT, SENTINEL_PORT):
            for server_name in (ip, name):
                out = proxy_host.run(
                    "python3 -c %s %s %s %s %s", _HANDSHAKE, ip, str(port), PROXY_CA, server_name
                )
                assert out.stdout.startswith("verified"), (name, port, server_name, out.stdout)
            wrong = proxy_host.run(
                "python3 -c %s %s %s %s %s",
                _HANDSHAKE,
                ip,
                str(port),
                PROXY_CA,
                "not-this-host.example",
            )
            assert wrong.stdout.startswith("failed SSLCertVerificationError"), wrong.stdout


def test_proxy_config_says_tls_and_the_key_is_a_credential(proxy_host: Any) -> None:
    redis = proxy_config(proxy_host)["redis"]
    assert redis["tls"] is True
    assert redis["tls_verify"] is True
    assert redis["tls_ca_file"] == PROXY_CA
    assert redis["tls_cert_file"] == "/etc/guard-proxy/tls/redis-client.crt"
    assert redis["tls_key_file"] == ""
    for path in (PROXY_CA, redis["tls_cert_file"]):
        f = proxy_host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "guard-proxy", 0o640), path
    key = proxy_host.file("/etc/guard-proxy/credentials/redis_tls_key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    unit = proxy_host.run("systemctl cat %s", PROXY_UNIT).stdout
    assert "LoadCredential=redis_tls_key:/etc/guard-proxy/credentials/redis_tls_key" in unit
    assert "Environment=REDIS_TLS_KEY_FILE=%d/redis_tls_key" in unit


def test_proxy_serves_cache_hits_from_redis_over_tls(proxy_host: Any) -> None:
    health = cache_health(proxy_host)
    assert health["active_backend"] == "redis", health
    text = f"tls hit {uuid.uuid4().hex}"
    generate(proxy_host, text)
    before = cache_stats(proxy_host)
    generate(proxy_host, text)
    after = wait_for(
        lambda: (s := cache_stats(proxy_host))["hits"] > before["hits"] and s, timeout=10
    )
    assert after, (before, cache_stats(proxy_host))
    assert cache_health(proxy_host)["active_backend"] == "redis"


def test_guard_proxy_status_is_healthy(proxy_host: Any) -> None:
    out = proxy_host.run(
        "/opt/guard-proxy/current/bin/guard-proxy status --config /etc/guard-proxy/config.yaml"
    )
    assert out.rc == 0, out.stdout + out.stderr
