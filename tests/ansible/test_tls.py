"""Redis TLS in the redis role without hosts: the checks of redis_tls_* (a missing or
non-PEM input fails naming it), and redis-config-check with a TLS candidate (its TLS
files are loaded, its tls-port is never bound)."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ASSERT_BASE, ROOT, run_assert_cases

PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
TLS_GOOD = {
    "redis_tls_enabled": True,
    "redis_tls_cert": PEM_CERT,
    "redis_tls_key": PEM_KEY,
    "redis_tls_ca": PEM_CERT,
}


def _case(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(ASSERT_BASE), **TLS_GOOD, **overrides}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    cases = {
        "good": _case(),
        "off_without_files": {**copy.deepcopy(ASSERT_BASE), "redis_tls_enabled": False},
        "generated": {
            **copy.deepcopy(ASSERT_BASE),
            "redis_tls_enabled": True,
            "redis_tls_generate_ca": True,
        },
        "no_key": _case(redis_tls_key=""),
        "no_ca": _case(redis_tls_ca=""),
        "path_not_pem": _case(redis_tls_cert="/etc/ssl/redis.crt"),
        "bad_auth_clients": _case(redis_tls_auth_clients="maybe"),
    }
    return run_assert_cases(tmp_path_factory.mktemp("tls"), cases)


@pytest.mark.parametrize("case", ["good", "off_without_files", "generated"])
def test_complete_tls_settings_pass(results: tuple[dict[str, Any], str], case: str) -> None:
    assert results[0][case]["ok"], results[0][case]


@pytest.mark.parametrize(
    ("case", "variable"), [("no_key", "redis_tls_key"), ("no_ca", "redis_tls_ca")]
)
def test_a_missing_input_fails_naming_it(
    results: tuple[dict[str, Any], str], case: str, variable: str
) -> None:
    result = results[0][case]
    assert not result["ok"]
    assert any(f"{variable} is empty" in m for m in result["msgs"]), result


def test_a_path_instead_of_pem_contents_is_refused(results: tuple[dict[str, Any], str]) -> None:
    result = results[0]["path_not_pem"]
    assert not result["ok"]
    assert any("the contents, not a path" in m for m in result["msgs"]), result


def test_tls_auth_clients_takes_only_no_optional_yes(results: tuple[dict[str, Any], str]) -> None:
    result = results[0]["bad_auth_clients"]
    assert not result["ok"]
    assert any('"no", "optional" or "yes"' in m for m in result["msgs"]), result


def test_the_key_never_appears_in_the_output(results: tuple[dict[str, Any], str]) -> None:
    assert "MIIE" not in results[1]


# --- redis-config-check with TLS ------------------------------------------------

CHECK = ROOT / "roles/redis/files/redis-config-check"


@pytest.fixture(scope="module")
def tls_files() -> Iterator[Path]:
    """A CA and a server certificate readable by the redis user (as the role writes them),
    in a directory of its own under /tmp (pytest's are root-only)."""
    if os.geteuid() != 0:
        pytest.skip("redis-config-check runs redis-server as the redis user: needs root")
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    d = Path(tempfile.mkdtemp(prefix="gp-tls-test-"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    )
    openssl("req", *ec, "-keyout", "redis.key", "-out", "redis.csr", "-subj", "/CN=localhost")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "redis.crt",
    )
    shutil.chown(d / "redis.key", "redis", "redis")
    (d / "redis.key").chmod(0o400)
    d.chmod(0o755)
    yield d
    shutil.rmtree(d)


def _tls_conf(d: Path, port: int, key: str = "redis.key") -> Path:
    conf = d / f"candidate-{key}.conf"
    conf.write_text(
        f"bind 127.0.0.1\nport 0\ntls-port {port}\ntls-cert-file {d}/redis.crt\n"
        f"tls-key-file {d}/{key}\ntls-ca-cert-file {d}/ca.crt\ntls-auth-clients optional\n"
    )
    return conf


def _check(conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(CHECK), "--conf", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_tls_candidate_is_checked_without_binding_its_port(tls_files: Path) -> None:
    """The running Redis holds the port: the throw-away server must not need it."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        run = _check(_tls_conf(tls_files, busy.getsockname()[1]))
    assert run.returncode == 0, run.stderr


def test_a_tls_candidate_with_a_missing_key_is_rejected(tls_files: Path) -> None:
    run = _check(_tls_conf(tls_files, 6379, key="missing.key"))
    assert run.returncode == 1
    assert "missing.key" in run.stderr
