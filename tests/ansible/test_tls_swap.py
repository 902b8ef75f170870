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
    checks_task,
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


BAD = {
    # case: (certificate, key, what the failure names)
    "key_mismatch": ("second", "first", "does not match"),
    "other_ca": ("other-ca-cert", "other-ca-cert", "does not verify against"),
    "no_san": ("no-san", "no-san", "does not name 127.0.0.1"),
    "server_only": ("server-only", "server-only", "for purpose sslclient"),
    "expires_soon": ("short", "short", "expires within 7 days"),
}
FILES = ("ca.crt", "redis.crt", "redis.key")


def _swap_play(
    name: str, pki: Pki, cert: str, key: str, out: Path, tls_dir: Path
) -> dict[str, Any]:
    """A play that runs tls.yml with ``cert``/``key`` of ``pki`` and records, in
    ``out``/``name``.json, whether it passed, the failure and the files in use after it."""
    live = (
        "{"
        + ", ".join(f"'{f}': lookup('ansible.builtin.file', '{tls_dir / f}')" for f in FILES)
        + "}"
    )
    record = {"dest": str(out / f"{name}.json"), "mode": "0600"}
    return {
        "name": f"Swap {name}",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"redis_tls_cert": pki.pem(f"{cert}.crt"), "redis_tls_key": pki.pem(f"{key}.key")},
        "tasks": [
            {
                "name": "Swap",
                "block": [
                    {
                        "name": "Write the TLS files (roles/redis/tasks/tls.yml)",
                        "ansible.builtin.include_role": {"name": "redis", "tasks_from": "tls"},
                    },
                    {
                        "name": "Passed",
                        "ansible.builtin.copy": {
                            **record,
                            "content": "{{ {'ok': true, 'live': " + live + "} | to_json }}",
                        },
                    },
                ],
                "rescue": [
                    {
                        "name": "Failed",
                        "ansible.builtin.copy": {
                            **record,
                            "content": "{{ {'ok': false, 'msg': ansible_failed_result.msg,"
                            " 'live': " + live + "} | to_json }}",
                        },
                    }
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def swaps(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> dict[str, Any]:
    """One ansible-playbook run: a first deploy with pair "first", a renewal to
    "second", then each bad candidate of BAD in turn, with their results."""
    tmp = tmp_path_factory.mktemp("swap")
    tls_dir, out = tmp / "tls", tmp / "results"
    out.mkdir()
    variables = {
        **copy.deepcopy(ASSERT_BASE),
        "redis_tls_enabled": True,
        "redis_tls_ca": pki.pem("ca.crt"),
        "redis_tls_dir": str(tls_dir),
        "redis_tls_metrics_dir": str(tmp / "textfiles"),
        "redis_replication_address": "127.0.0.1",
        "_redis_tls_check_script": str(tmp / "redis-tls-check"),
        "_redis_user": "root",
        "_redis_group": "root",
        # No redis-server unit here: the reload handlers have nothing to do.
        "_redis_runs": False,
        "_redis_sentinel_runs": False,
    }
    load = {
        "name": "Load the role",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"redis_tls_cert": pki.pem("first.crt"), "redis_tls_key": pki.pem("first.key")},
        "tasks": [
            checks_task("redis")
        ],
    }
    plays = [load, _swap_play("first", pki, "first", "first", out, tls_dir)]
    plays.append(_swap_play("second", pki, "second", "second", out, tls_dir))
    plays += [
        _swap_play(case, pki, cert, key, out, tls_dir) for case, (cert, key, _) in BAD.items()
    ]
    run = run_playbook(tmp, plays, extra_vars=variables)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    results = {
        p["name"][5:]: json.loads((out / f"{p['name'][5:]}.json").read_text()) for p in plays[1:]
    }
    # Per play, what ansible-playbook printed (to see which ran handlers).
    printed = {seg.split("]", 1)[0][5:]: seg for seg in output.split("\nPLAY [")[1:]}
    return {"dir": tls_dir, "tmp": tmp, "results": results, "output": output, "printed": printed}


def test_no_key_material_is_printed(swaps: dict[str, Any], pki: Pki) -> None:
    assert "PRIVATE KEY" not in swaps["output"]
    for name in ("first", "second", "other-ca-cert", "no-san", "server-only", "short"):
        assert pki.pem(f"{name}.key").splitlines()[1] not in swaps["output"]


def test_a_renewal_installs_the_new_pair_and_keeps_the_previous(
    swaps: dict[str, Any], pki: Pki
) -> None:
    first, second = swaps["results"]["first"], swaps["results"]["second"]
    assert first["ok"] and second["ok"], swaps["output"][-4000:]
    assert second["live"]["redis.crt"].strip() == pki.pem("second.crt").strip()
    assert second["live"]["redis.key"].strip() == pki.pem("second.key").strip()
    previous = swaps["dir"] / "previous"
    assert (previous / "redis.crt").read_text().strip() == pki.pem("first.crt").strip()
    assert (previous / "redis.key").read_text().strip() == pki.pem("first.key").strip()
    assert (swaps["dir"] / "redis.key").stat().st_mode & 0o777 == 0o400
    assert (previous / "redis.key").stat().st_mode & 0o777 == 0o400


def test_the_expiry_is_published_for_the_alert(swaps: dict[str, Any], pki: Pki) -> None:
    enddate = subprocess.run(
        ["sh", "-c", 'date -u -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s',
         "-", str(pki.d / "second.crt")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    text = (swaps["tmp"] / "textfiles" / "redis-tls.prom").read_text()
    sample = (
        f'tls_certificate_not_after_timestamp_seconds{{service="redis",'
        f'path="{swaps["dir"] / "redis.crt"}"}} {enddate}'
    )
    assert sample in text.splitlines()
    assert "# TYPE tls_certificate_not_after_timestamp_seconds gauge" in text


@pytest.mark.parametrize("case", list(BAD))
def test_a_candidate_that_fails_a_check_is_never_installed(
    swaps: dict[str, Any], case: str
) -> None:
    result = swaps["results"][case]
    assert not result["ok"], f"{case} was installed"
    assert "failed the check and were not installed" in result["msg"]
    assert BAD[case][2] in result["msg"], result["msg"]
    assert result["live"] == swaps["results"]["second"]["live"]  # the files in use, untouched
    assert "RUNNING HANDLER" not in swaps["printed"][case]  # nothing reloaded or restarted


def test_redis_starts_from_the_files_in_use_after_refused_swaps(
    swaps: dict[str, Any], pki: Pki, servers: Servers, tmp_path: Path
) -> None:
    """After the refused candidates, a real Redis starts over TLS from the files in
    use and serves a TLS client that verifies it against the CA."""
    tls_dir = swaps["dir"]
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
