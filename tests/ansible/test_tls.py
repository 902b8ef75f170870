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
from conftest import (
    ASSERT_BASE,
    ROOT,
    SENTINEL_BASE,
    Servers,
    checks_task,
    free_port,
    redis_cli,
    run_assert_cases,
    run_playbook,
    wait_until,
)

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


# --- replication and Sentinel over TLS, from the role's own files --------------

ADMIN = "Adm1n-Passw0rd-For-The-Tests"
REPL = "Repl1cation-Passw0rd-Tests"
SENT_ACL = "Sent1nel-ACL-Passw0rd-Tests"
SENT = "Sent1nel-Passw0rd-For-Tests"


@pytest.fixture(scope="module")
def tls_group(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The throw-away CA of tls_generate.yml (a certificate for "localhost" at 127.0.0.1
    and a client certificate) and the role's templates rendered with TLS on."""
    tmp = tmp_path_factory.mktemp("tls-group")
    out, ca = tmp / "out", tmp / "ca"
    out.mkdir()
    ports = {"primary": free_port(), "replica": free_port(), "sentinel": free_port()}
    variables = {
        **copy.deepcopy(SENTINEL_BASE),
        "redis_admin_password": ADMIN,
        "redis_replication_password": REPL,
        "redis_sentinel_acl_password": SENT_ACL,
        "redis_sentinel_password": SENT,
        "redis_server_version": "7.0.15",
        "redis_replication_address": "127.0.0.1",
        "redis_port": ports["primary"],
        "redis_sentinel_port": ports["sentinel"],
        "redis_sentinel_bind": ["127.0.0.1"],
        "redis_sentinel_service": "guard-cache",
        "redis_sentinel_quorum": 1,
        "redis_tls_enabled": True,
        "redis_tls_generate_ca": True,
        "redis_tls_generate_dir": str(ca),
        "redis_tls_generate_clients": ["proxy-test"],
        "redis_tls_auth_clients": "yes",
        "_redis_tls_ca_file": str(ca / "ca.crt"),
        "_redis_tls_cert_file": str(ca / "localhost.crt"),
        "_redis_tls_key_file": str(ca / "localhost.key"),
        "_redis_runtime_dir": str(out),
        "_redis_sentinel_static_conf": str(out / "sentinel-static.conf"),
        "_redis_sentinel_acl_path": str(out / "sentinel-users.acl"),
        "_redis_primary": ["127.0.0.1", str(ports["primary"])],
    }
    templates = ROOT / "roles/redis/templates"
    sources = {
        "redis.conf": ROOT / "templates/redis.conf.j2",
        "users.acl": templates / "users.acl.j2",
        "replication.conf": templates / "replication.conf.j2",
        "sentinel-static.conf": templates / "sentinel-static.conf.j2",
        "sentinel-runtime.conf": templates / "sentinel-runtime.conf.j2",
        "sentinel-users.acl": templates / "sentinel-users.acl.j2",
    }
    plays = [
        {
            "name": "Issue certificates and render the files",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                checks_task("redis"),
                {
                    "name": "Issue the certificates",
                    "ansible.builtin.include_role": {"name": "redis", "tasks_from": "tls_generate"},
                },
                *[
                    {
                        "name": f"Render {name}",
                        "ansible.builtin.template": {
                            "src": str(src),
                            "dest": str(out / name),
                            "mode": "0600",
                        },
                    }
                    for name, src in sources.items()
                ],
            ],
        }
    ]
    run = run_playbook(tmp, plays, extra_vars=variables)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    again = run_playbook(tmp, plays, extra_vars=variables)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
    return {"dir": out, "ca": ca, "ports": ports}


def _tls_cli(
    group: dict[str, Any],
    port: int,
    *args: str,
    password: str | None = None,
    user: str | None = None,
    cert: str | None = "localhost",
) -> subprocess.CompletedProcess[str]:
    ca = group["ca"]
    tls = ["--tls", "--cacert", str(ca / "ca.crt")]
    if cert:
        tls += ["--cert", str(ca / f"{cert}.crt"), "--key", str(ca / f"{cert}.key")]
    return redis_cli(port, *tls, *args, password=password, user=user)


def _start_redis(
    servers: Servers, group: dict[str, Any], tmp: Path, name: str, extra: str = ""
) -> int:
    port = group["ports"][name]
    conf = tmp / f"{name}.conf"
    conf.write_text(
        f"include {group['dir'] / 'redis.conf'}\n{extra}"
        f"tls-port {port}\nbind 127.0.0.1\naclfile {group['dir'] / 'users.acl'}\n"
        f'dir {tmp}\ndbfilename {name}.rdb\nappendonly no\nsave ""\nsupervised no\n'
        f"pidfile {tmp / name}.pid\n"
    )
    proc, log = servers.start(str(conf), log_name=f"{name}.log")
    wait_until(
        lambda: (
            proc.poll() is not None
            or _tls_cli(group, port, "PING", password=ADMIN, user="default").stdout.strip()
            == "PONG"
        ),
        what=name,
    )
    assert proc.poll() is None, log.read_text()
    return port


def test_tls_group_configs_are_tls_only(tls_group: dict[str, Any]) -> None:
    conf = (tls_group["dir"] / "redis.conf").read_text().splitlines()
    assert "port 0" in conf and f"tls-port {tls_group['ports']['primary']}" in conf
    assert "tls-auth-clients yes" in conf
    static = (tls_group["dir"] / "sentinel-static.conf").read_text().splitlines()
    assert "port 0" in static and "tls-replication yes" in static
    assert "tls-replication yes" in (tls_group["dir"] / "replication.conf").read_text().splitlines()


def test_replica_and_sentinel_work_over_tls_only(
    tls_group: dict[str, Any], servers: Servers, tmp_path: Path
) -> None:
    """A replica syncs and a Sentinel finds primary and replica with no plain-text port
    anywhere; plain text and a client without a certificate are refused
    (tls-auth-clients yes), the proxy's client certificate is accepted."""
    primary = _start_redis(servers, tls_group, tmp_path, "primary")
    replica = _start_redis(
        servers, tls_group, tmp_path, "replica",
        f"include {tls_group['dir'] / 'replication.conf'}\nreplicaof 127.0.0.1 {primary}\n",
    )  # fmt: skip
    wait_until(
        lambda: (
            "master_link_status:up"
            in _tls_cli(
                tls_group, replica, "INFO", "replication", password=ADMIN, user="default"
            ).stdout
        ),
        what="the replica's TLS link",
    )
    sentinel_port = tls_group["ports"]["sentinel"]
    runtime = tmp_path / "sentinel.conf"
    shutil.copy(tls_group["dir"] / "sentinel-runtime.conf", runtime)
    proc, log = servers.start(
        str(runtime), "--sentinel", "--supervised", "no", "--pidfile", str(tmp_path / "s.pid"),
        log_name="sentinel.log",
    )  # fmt: skip

    def sentinel_knows_both() -> bool:
        assert proc.poll() is None, log.read_text()
        out = _tls_cli(tls_group, sentinel_port, "SENTINEL", "MASTER", "guard-cache", password=SENT)
        fields = dict(zip(out.stdout.split()[::2], out.stdout.split()[1::2], strict=False))
        return fields.get("flags") == "master" and fields.get("num-slaves") == "1"

    wait_until(sentinel_knows_both, timeout=20, what="the Sentinel over TLS")
    for port in (primary, replica, sentinel_port):
        plain = redis_cli(port, "PING")
        assert plain.returncode != 0 and "PONG" not in plain.stdout, (port, plain.stdout)
        no_cert = _tls_cli(tls_group, port, "PING", cert=None)
        assert "NOAUTH" not in no_cert.stdout and "PONG" not in no_cert.stdout, (
            port,
            no_cert.stdout,
        )
        client = _tls_cli(tls_group, port, "PING", cert="proxy-test")
        assert "NOAUTH" in client.stdout + client.stderr, (port, client.stdout, client.stderr)
