"""HTTPS on the proxy's own listener (``server.tls_cert_file``/``server.tls_key_file``).

A throw-away CA and a server certificate for 127.0.0.1 (``guard_proxy_testing.redis_server``'s
openssl helper); the proxy serves them bound by itself, on a socket passed as systemd would, and
with two workers. Clients verify against the CA; plain HTTP to the port gets no answer.
The operator commands find the HTTPS instance from its configuration, pinning its own
certificate, or from ``--url`` with ``--ca-file``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from guard_proxy_testing.activation import listening_socket, spawn_activated_proxy
from guard_proxy_testing.processes import (
    ADMIN_TOKEN,
    FakeOllama,
    Proxy,
    assert_serve_config_error,
    clean_env,
    free_port,
    spawn_proxy,
)
from guard_proxy_testing.redis_server import make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ca.crt`` and ``server.crt``/``server.key`` (SAN 127.0.0.1, localhost)."""
    directory = tmp_path_factory.mktemp("listener-tls")
    make_certificates(directory)
    return directory


def _tls_env(certs: Path, fake_ollama: FakeOllama, **extra: str) -> dict[str, str]:
    return {
        "OLLAMA_URL": fake_ollama.url,
        "CACHE_BACKEND": "memory",
        "GUARD_PROXY_ADMIN_TOKEN": ADMIN_TOKEN,
        "PROXY_TLS_CERT_FILE": str(certs / "server.crt"),
        "PROXY_TLS_KEY_FILE": str(certs / "server.key"),
        **extra,
    }


@pytest.fixture(params=["bound", "systemd", "systemd-2-workers"])
def tls_proxy(
    request: pytest.FixtureRequest, certs: Path, fake_ollama: FakeOllama, tmp_path: Path
) -> Iterator[Proxy]:
    """An HTTPS proxy: bound by itself, on systemd's socket, or that with two workers."""
    log = tmp_path / "proxy.log"
    if request.param == "bound":
        env = _tls_env(certs, fake_ollama, PROXY_PORT=str(free_port()))
        proxy = spawn_proxy(log, env, ca_file=certs / "ca.crt")
        try:
            yield proxy
        finally:
            proxy.stop()
        return
    workers = "2" if request.param.endswith("workers") else "1"
    sock = listening_socket()
    try:
        env = _tls_env(
            certs, fake_ollama, PROXY_PORT=str(sock.getsockname()[1]), PROXY_WORKERS=workers
        )
        proxy = spawn_activated_proxy(sock, log, env, ca_file=certs / "ca.crt")
        try:
            yield proxy
        finally:
            proxy.stop()
    finally:
        sock.close()


def _listening_records(proxy: Proxy) -> list[dict[str, object]]:
    return [r for r in proxy.log_records() if r.get("msg") == "listening"]


def test_https_verified_against_the_ca(tls_proxy: Proxy, fake_ollama: FakeOllama) -> None:
    # A new connection per request: with two workers, both get to answer some.
    for _ in range(6):
        with tls_proxy.client() as client:
            health = client.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["status"] == "ok"
    with tls_proxy.client() as client:
        reply = client.post(
            "/api/generate",
            json={"model": "llama3.2", "prompt": "hello over tls", "stream": False},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["done"] is True
    assert fake_ollama.requests("hello over tls")
    # Every serving process (each worker, or the one process) says it listens with TLS. On
    # a loaded machine one worker may have answered everything so far while the other still
    # starts: wait (bounded) for its line instead of assuming it is there.
    workers = int(tls_proxy.env.get("PROXY_WORKERS", "1"))
    deadline = time.monotonic() + 60
    while len(_listening_records(tls_proxy)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    serving = [r for r in _listening_records(tls_proxy) if "tls" in r]
    assert len(serving) == workers, tls_proxy.logs()
    assert all(r["tls"] is True for r in serving), serving


def test_plain_http_to_the_tls_port_fails(tls_proxy: Proxy) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_proxy.port}/health", timeout=5)


def test_https_not_trusted_without_the_ca(tls_proxy: Proxy) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_proxy.url}/health", timeout=5, verify=True)


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guard_proxy", *args],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("tls_proxy", ["bound"], indirect=True)
def test_cli_commands_against_the_https_instance(tls_proxy: Proxy, certs: Path) -> None:
    # From the configuration: https, the instance's own certificate pinned.
    status = _cli("status", env=tls_proxy.env)
    assert status.returncode == 0, status.stdout + status.stderr
    stats = _cli("cache", "stats", "--json", env=tls_proxy.env)
    assert stats.returncode == 0, stats.stdout + stats.stderr
    assert isinstance(json.loads(stats.stdout), dict)
    # --url with --ca-file: verified against that CA, host name checked.
    url = ["--url", tls_proxy.url]
    with_ca = _cli("status", *url, "--ca-file", str(certs / "ca.crt"), env={})
    assert with_ca.returncode == 0, with_ca.stdout + with_ca.stderr
    # --url alone: the system's store does not know the test CA.
    untrusted = _cli("status", *url, env={})
    assert untrusted.returncode == 2, untrusted.stdout + untrusted.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout + untrusted.stderr


@pytest.mark.parametrize(
    ("yaml_text", "env_names", "key", "problem"),
    [
        ("server:\n  tls_cert_file: {cert}\n", (), "server.tls_cert_file", "tls_key_file"),
        (
            "",
            ("PROXY_TLS_KEY_FILE",),
            "server.tls_key_file (from PROXY_TLS_KEY_FILE)",
            "tls_cert_file",
        ),
        (
            "server:\n  tls_cert_file: {cert}\n  tls_key_file: {missing}\n",
            (),
            "server.tls_key_file",
            "cannot read",
        ),
        (
            "server:\n  tls_cert_file: {missing}\n  tls_key_file: {key}\n",
            (),
            "server.tls_cert_file",
            "cannot read",
        ),
        (
            "server:\n  tls_cert_file: {ca}\n  tls_key_file: {key}\n",
            (),
            "server.tls_cert_file, server.tls_key_file",
            "not a PEM certificate and its private key",
        ),
    ],
    ids=["cert-without-key", "key-without-cert", "key-unreadable", "cert-unreadable", "mismatch"],
)
def test_tls_config_errors_exit_2_naming_the_key(
    tmp_path: Path,
    certs: Path,
    yaml_text: str,
    env_names: tuple[str, ...],
    key: str,
    problem: str,
) -> None:
    paths = {
        "cert": certs / "server.crt",
        "key": certs / "server.key",
        "ca": certs / "ca.crt",
        "missing": tmp_path / "no-such.pem",
    }
    env = {name: str(certs / "server.key") for name in env_names}
    assert_serve_config_error(
        tmp_path, yaml_text.format(**paths), {"CACHE_BACKEND": "memory", **env}, key, problem
    )
