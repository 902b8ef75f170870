"""``guard-proxy check-redis`` over TLS: a verified connection works, a wrong CA is named."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from guard_proxy_testing.cli import RunCli
from guard_proxy_testing.redis_server import CA_EXTENSIONS, LEAF_EXTENSIONS, RedisServer, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
        *CA_EXTENSIONS, cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"


def make_server_cert(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    (directory / "san.cnf").write_text(
        f"subjectAltName=IP:127.0.0.1,DNS:localhost\n{LEAF_EXTENSIONS}"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt",
        cwd=directory,
    )  # fmt: skip
    return directory / "server.crt", directory / "server.key"


@pytest.fixture
def tls_redis(
    tmp_path: Path, redis_server_factory: Callable[..., RedisServer]
) -> tuple[RedisServer, int, Path, Path]:
    """A redis-server with a TLS port (plus its plain port); the CA and a foreign CA."""
    ca = make_ca(tmp_path, "ca")
    other_ca, _ = make_ca(tmp_path, "other")
    cert, key = make_server_cert(tmp_path, ca)
    tls_port = free_port()
    server = redis_server_factory(
        extra_config=[
            f"tls-port {tls_port}",
            f"tls-cert-file {cert}",
            f"tls-key-file {key}",
            f"tls-ca-cert-file {ca[0]}",
            "tls-auth-clients no",
        ]
    )
    return server, tls_port, ca[0], other_ca


def _env(server: RedisServer, port: int, ca: Path) -> dict[str, str]:
    assert server.password
    return {
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(port),
        "REDIS_PASSWORD": server.password,
        "REDIS_TLS": "true",
        "REDIS_TLS_CA_FILE": str(ca),
    }


def test_tls_verified(
    run_cli: RunCli, secrets: list[str], tls_redis: tuple[RedisServer, int, Path, Path]
) -> None:
    server, port, ca, _ = tls_redis
    assert server.password
    secrets.append(server.password)
    result = run_cli("check-redis", env=_env(server, port, ca))
    assert result.returncode == 0, str(result)
    assert "TLS on" in result.stdout
    lines = result.stdout.splitlines()
    assert lines.index("ok    TLS handshake") < lines.index("ok    AUTH as the default user")
    assert "ok    UNLINK" in result.stdout, str(result)


def test_tls_wrong_ca(
    run_cli: RunCli, secrets: list[str], tls_redis: tuple[RedisServer, int, Path, Path]
) -> None:
    server, port, _, other_ca = tls_redis
    assert server.password
    secrets.append(server.password)
    result = run_cli("check-redis", env=_env(server, port, other_ca))
    assert result.returncode == 1, str(result)
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith("FAIL  TLS handshake"), str(result)
    assert "certificate verify failed" in fails[0], str(result)


def test_tls_against_plain_port(
    run_cli: RunCli, secrets: list[str], tls_redis: tuple[RedisServer, int, Path, Path]
) -> None:
    server, _, ca, _ = tls_redis
    assert server.password
    secrets.append(server.password)
    result = run_cli("check-redis", env=_env(server, server.port, ca))
    assert result.returncode == 1, str(result)
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "is this a TLS port?" in fails[0], str(result)
