"""Swapping Redis's TLS files (roles/redis/tasks/tls.yml) like a careful operator: the
new CA bundle, certificate and key are checked before they replace the files in use
(key matches, chain to the CA, server and client use, SANs, ``openssl x509 -checkend``),
the replaced pair is kept, a candidate that fails leaves the files in use untouched, and
a real Redis still starts from them. The certificate's notAfter is published for the
expiry alert (monitoring/prometheus/rules/certificates.rules.yml)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ASSERT_BASE,
    ROOT,
    Servers,
    free_port,
    redis_cli,
    run_playbook,
    wait_until,
)

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
GOOD_EXT = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
ADMIN = ASSERT_BASE["redis_admin_password"]


class Pki:
    """Two CAs and certificates issued on demand by ``openssl`` in one directory."""

    def __init__(self, d: Path) -> None:
        self.d = d
        for ca in ("ca", "other-ca"):
            self.openssl("req", "-x509", *EC, "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                         "-days", "30", "-subj", f"/CN={ca}")  # fmt: skip

    def openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.d, check=True, capture_output=True, timeout=30)

    def issue(self, name: str, ca: str = "ca", days: int = 30, ext: str = GOOD_EXT) -> None:
        (self.d / f"{name}.ext").write_text(ext)
        self.openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                     "/CN=localhost")  # fmt: skip
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey",
                     f"{ca}.key", "-CAcreateserial", "-days", str(days), "-extfile",
                     f"{name}.ext", "-out", f"{name}.crt")  # fmt: skip

    def pem(self, name: str) -> str:
        return (self.d / name).read_text()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.issue("first")
    p.issue("second")
    p.issue("other-ca-cert", ca="other-ca")
    p.issue("no-san", ext="extendedKeyUsage=serverAuth,clientAuth\n")
    p.issue(
        "server-only",
        ext="subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    p.issue("short", days=2)
    return p


def swap(tmp: Path, pki: Pki, cert: str, key: str, tls_dir: Path) -> tuple[bool, str]:
    """Runs tls.yml with ``cert``/``key`` (PEM files of ``pki``) and the CA ca.crt."""
    variables = {
        **copy.deepcopy(ASSERT_BASE),
        "redis_tls_enabled": True,
        "redis_tls_cert": pki.pem(f"{cert}.crt"),
        "redis_tls_key": pki.pem(f"{key}.key"),
        "redis_tls_ca": pki.pem("ca.crt"),
        "redis_tls_dir": str(tls_dir),
        "redis_tls_metrics_dir": str(tls_dir.parent / "textfiles"),
        "redis_replication_address": "127.0.0.1",
        "_redis_tls_check_script": str(tls_dir.parent / "redis-tls-check"),
        "_redis_user": "root",
        "_redis_group": "root",
        # No redis-server unit here: the reload handlers have nothing to do.
        "_redis_runs": False,
        "_redis_sentinel_runs": False,
    }
    plays = [
        {
            "name": "Swap the TLS files",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Check the variables (and load the role)",
                    "ansible.builtin.include_role": {
                        "name": "redis",
                        "tasks_from": "assert",
                        "public": True,
                    },
                },
                {
                    "name": "Write the TLS files",
                    "ansible.builtin.include_role": {"name": "redis", "tasks_from": "tls"},
                },
            ],
        }
    ]
    run = run_playbook(tmp, plays, extra_vars=variables)
    output = run.stdout + run.stderr
    key_body = pki.pem(f"{key}.key").splitlines()[1]
    assert "PRIVATE KEY" not in output and key_body not in output  # no key material shown
    return run.returncode == 0, output


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> dict[str, Any]:
    """First deploy with pair "first", then a renewal to "second": both pass."""
    tmp = tmp_path_factory.mktemp("swap")
    tls_dir = tmp / "tls"
    ok, out = swap(tmp, pki, "first", "first", tls_dir)
    assert ok, out[-4000:]
    first = {f: (tls_dir / f).read_bytes() for f in ("ca.crt", "redis.crt", "redis.key")}
    ok, out = swap(tmp, pki, "second", "second", tls_dir)
    assert ok, out[-4000:]
    return {"tmp": tmp, "dir": tls_dir, "first": first}


def _live(tls_dir: Path) -> dict[str, bytes]:
    return {f: (tls_dir / f).read_bytes() for f in ("ca.crt", "redis.crt", "redis.key")}


def test_a_renewal_installs_the_new_pair_and_keeps_the_previous(
    installed: dict[str, Any], pki: Pki
) -> None:
    tls_dir = installed["dir"]
    assert (tls_dir / "redis.crt").read_text().strip() == pki.pem("second.crt").strip()
    assert (tls_dir / "redis.key").read_text().strip() == pki.pem("second.key").strip()
    previous = tls_dir / "previous"
    assert (previous / "redis.crt").read_bytes() == installed["first"]["redis.crt"]
    assert (previous / "redis.key").read_bytes() == installed["first"]["redis.key"]
    assert (tls_dir / "redis.key").stat().st_mode & 0o777 == 0o400
    assert (previous / "redis.key").stat().st_mode & 0o777 == 0o400


def test_the_expiry_is_published_for_the_alert(installed: dict[str, Any], pki: Pki) -> None:
    enddate = subprocess.run(
        ["sh", "-c", 'date -u -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s',
         "-", str(pki.d / "second.crt")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    text = (installed["dir"].parent / "textfiles" / "redis-tls.prom").read_text()
    sample = (
        f'tls_certificate_not_after_timestamp_seconds{{service="redis",'
        f'path="{installed["dir"] / "redis.crt"}"}} {enddate}'
    )
    assert sample in text.splitlines()
    assert "# TYPE tls_certificate_not_after_timestamp_seconds gauge" in text


BAD = {
    # case: (certificate, key, what the failure names)
    "key_mismatch": ("second", "first", "does not match"),
    "other_ca": ("other-ca-cert", "other-ca-cert", "does not verify against"),
    "no_san": ("no-san", "no-san", "does not name 127.0.0.1"),
    "server_only": ("server-only", "server-only", "for purpose sslclient"),
    "expires_soon": ("short", "short", "expires within 7 days"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_candidate_that_fails_a_check_is_never_installed(
    installed: dict[str, Any], pki: Pki, case: str, tmp_path: Path
) -> None:
    cert, key, reason = BAD[case]
    tls_dir = installed["dir"]
    before = _live(tls_dir)
    previous = {f: (tls_dir / "previous" / f).read_bytes() for f in ("redis.crt", "redis.key")}
    ok, out = swap(tmp_path, pki, cert, key, tls_dir)
    assert not ok
    assert "failed the check and were not installed" in out
    assert reason in out, out[-3000:]
    assert _live(tls_dir) == before  # the files in use are untouched
    assert {f: (tls_dir / "previous" / f).read_bytes() for f in previous} == previous
    assert "RUNNING HANDLER" not in out  # nothing reloaded or restarted


def test_redis_starts_from_the_files_in_use_after_a_refused_swap(
    installed: dict[str, Any], pki: Pki, servers: Servers, tmp_path: Path
) -> None:
    """After a refused candidate (key of another pair), a real Redis starts over TLS
    from the files in use and serves a TLS client verifying it against the CA."""
    tls_dir = installed["dir"]
    ok, _ = swap(tmp_path, pki, "second", "first", tls_dir)
    assert not ok
    port = free_port()
    proc, log = servers.start(
        "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(tls_dir / "redis.crt"), "--tls-key-file", str(tls_dir / "redis.key"),
        "--tls-ca-cert-file", str(tls_dir / "ca.crt"), "--tls-auth-clients", "no",
        "--save", "", "--appendonly", "no", "--dir", str(tmp_path), log_name="redis.log",
    )  # fmt: skip
    tls = ["--tls", "--cacert", str(pki.d / "ca.crt")]
    wait_until(
        lambda: proc.poll() is not None or redis_cli(port, *tls, "PING").stdout.strip() == "PONG",
        what="Redis over TLS",
    )
    assert proc.poll() is None, log.read_text()


def test_the_checker_passes_the_generated_ca_of_molecule_and_local(tmp_path: Path) -> None:
    """The throw-away CA (tls_generate.yml) issues what the check requires: the checker
    accepts a host certificate of it for the names the role asks for."""
    ca = tmp_path / "ca"
    variables = {
        **copy.deepcopy(ASSERT_BASE),
        "redis_tls_enabled": True,
        "redis_tls_generate_ca": True,
        "redis_tls_generate_dir": str(ca),
        "redis_replication_address": "127.0.0.1",
    }
    plays = [
        {
            "name": "Issue from the throw-away CA",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Load the role",
                    "ansible.builtin.include_role": {
                        "name": "redis",
                        "tasks_from": "assert",
                        "public": True,
                    },
                },
                {
                    "name": "Issue",
                    "ansible.builtin.include_role": {"name": "redis", "tasks_from": "tls_generate"},
                },
                {
                    "name": "Record the names the check requires",
                    "ansible.builtin.copy": {
                        "dest": str(tmp_path / "names.json"),
                        "content": "{{ redis_tls_required_names | to_json }}",
                        "mode": "0600",
                    },
                },
            ],
        }
    ]
    run = run_playbook(tmp_path, plays, extra_vars=variables)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    names = json.loads((tmp_path / "names.json").read_text())
    assert names == ["127.0.0.1", "localhost"]
    cand = tmp_path / "candidate"
    cand.mkdir()
    for src, dest in (
        ("ca.crt", "ca.crt"),
        ("localhost.crt", "redis.crt"),
        ("localhost.key", "redis.key"),
    ):
        (cand / dest).write_bytes((ca / src).read_bytes())
    check = subprocess.run(
        ["sh", str(ROOT / "roles/redis/files/redis-tls-check"), str(cand), "7", *names],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
