"""HTTPS on the proxy's listener in the guard_proxy role: the config and unit
rendered with guard_proxy_tls_cert/_key set and unset, the probe URL, and the
checks of assert.yml (both or neither, PEM, only behind load balancers that re-encrypt,
haproxy_backend_tls), and a pair generated from the throw-away CA."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, checks_task, run_playbook

CERT = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIGHtest-Zq7Secret\n-----END PRIVATE KEY-----\n"

BASE: dict[str, Any] = {
    "guard_proxy_allow_untested_platform": True,
    "guard_proxy_cache_backend": "memory",
    "guard_proxy_target_python": {"executable": "/usr/bin/python3"},
    "guard_proxy_loadbalancers": [],
}


def _render(tmp: Path, variables: dict[str, Any]) -> dict[str, str]:
    out = tmp / "out"
    out.mkdir()
    templates = ROOT / "roles/guard_proxy/templates"
    plays = [
        {
            "name": "Render the guard_proxy config and unit",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                checks_task("guard_proxy"),
                *[
                    {
                        "name": f"Render {name}",
                        "ansible.builtin.template": {
                            "src": str(templates / f"{name}.j2"),
                            "dest": str(out / name),
                            "mode": "0600",
                        },
                    }
                    for name in ("config.yaml", "guard-proxy.service")
                ],
                {
                    "name": "Write the role's internal values",
                    "ansible.builtin.copy": {
                        "dest": str(out / "values.json"),
                        "mode": "0600",
                        "content": "{{ {'probe_url': _guard_proxy_probe_url,"
                        " 'cert_file': _guard_proxy_tls_cert_file,"
                        " 'credentials': _guard_proxy_credentials | map(attribute='name') | list}"
                        " | to_json }}",
                    },
                },
            ],
        }
    ]
    run = run_playbook(tmp, plays, extra_vars=variables)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    assert "Zq7Secret" not in run.stdout + run.stderr
    return {
        "config": (out / "config.yaml").read_text(),
        "unit": (out / "guard-proxy.service").read_text(),
        "values": (out / "values.json").read_text(),
    }


def test_tls_on_renders_the_listener_files(tmp_path: Path) -> None:
    rendered = _render(tmp_path, {**BASE, "guard_proxy_tls_cert": CERT, "guard_proxy_tls_key": KEY})
    values = json.loads(rendered["values"])
    config = rendered["config"].splitlines()
    assert f"  tls_cert_file: {json.dumps(values['cert_file'])}" in config
    assert '  tls_key_file: "/run/credentials/guard-proxy.service/tls_key"' in config
    assert values["cert_file"] == "/etc/guard-proxy/listener.crt"
    unit = rendered["unit"].splitlines()
    assert "LoadCredential=tls_key:/etc/guard-proxy/credentials/tls_key" in unit
    assert "tls_key" in values["credentials"]
    assert values["probe_url"].startswith("https://127.0.0.1:")
    assert "Zq7Secret" not in rendered["config"] + rendered["unit"]


def test_tls_off_renders_plain_http(tmp_path: Path) -> None:
    rendered = _render(tmp_path, BASE)
    assert "tls_cert_file" not in rendered["config"].split("redis:")[0]
    assert "tls_key" not in rendered["unit"]
    assert json.loads(rendered["values"])["probe_url"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"guard_proxy_tls_cert": CERT}, "go together (both or neither)"),
        ({"guard_proxy_tls_key": KEY}, "go together (both or neither)"),
        ({"guard_proxy_tls_cert": "/etc/ssl/cert.pem", "guard_proxy_tls_key": KEY}, "as PEM"),
        (
            {
                "guard_proxy_tls_cert": CERT,
                "guard_proxy_tls_key": KEY,
                "guard_proxy_loadbalancers": ["lb1"],
            },
            "while haproxy_backend_tls is false on lb1",
        ),
        (
            # localhost as its own load balancer, re-encrypting (extra vars are hostvars).
            {"guard_proxy_loadbalancers": ["localhost"], "haproxy_backend_tls": True},
            "haproxy_backend_tls is true on localhost but localhost serves plain HTTP",
        ),
        (
            {"guard_proxy_tls_generate": True, "guard_proxy_tls_cert": CERT, "guard_proxy_tls_key": KEY},
            "guard_proxy_tls_generate takes neither",
        ),
    ],
    ids=[
        "cert-without-key",
        "key-without-cert",
        "not-pem",
        "behind-a-plain-load-balancer",
        "plain-behind-a-reencrypting-load-balancer",
        "generate-and-a-cert",
    ],
)
def test_the_role_refuses(tmp_path: Path, variables: dict[str, Any], message: str) -> None:
    plays = [
        {
            "name": "Check",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {"guard_proxy_no_log": False},
            "tasks": [
                {
                    "name": "Include assert.yml",
                    "ansible.builtin.include_role": {"name": "guard_proxy", "tasks_from": "assert"},
                }
            ],
        }
    ]
    run = run_playbook(tmp_path, plays, extra_vars={**BASE, **variables})
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-4000:]
    assert message in " ".join(output.split()), output[-4000:]


def test_the_haproxy_role_refuses_proxies_with_tls(tmp_path: Path) -> None:
    plays = [
        {
            "name": "Check",
            "hosts": "localhost",
            "gather_facts": False,
            "vars": {
                "haproxy_allow_untested_platform": True,
                "haproxy_backend_hosts": ["localhost"],
            },
            "tasks": [
                {
                    # What host_vars of the proxy would hold (play vars are not hostvars).
                    "name": "Set the proxy's certificate",
                    "ansible.builtin.set_fact": {"guard_proxy_tls_cert": CERT},
                },
                {
                    "name": "Include assert.yml",
                    "ansible.builtin.include_role": {"name": "haproxy", "tasks_from": "assert"},
                }
            ],
        }
    ]
    run = run_playbook(tmp_path, plays)
    output = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0, output[-4000:]
    assert "localhost serve HTTPS on their listener" in output, output[-4000:]
    assert "while haproxy_backend_tls is false" in output, output[-4000:]


def test_tls_behind_a_reencrypting_load_balancer_is_accepted(tmp_path: Path) -> None:
    """The refusal of listener TLS behind a load balancer is lifted when it re-encrypts."""
    rendered = _render(
        tmp_path,
        {
            **BASE,
            "guard_proxy_tls_cert": CERT,
            "guard_proxy_tls_key": KEY,
            "guard_proxy_loadbalancers": ["localhost"],
            "haproxy_backend_tls": True,
        },
    )
    assert '  tls_key_file: "/run/credentials/guard-proxy.service/tls_key"' in rendered["config"]


def test_a_generated_listener_certificate_chains_to_the_ca(tmp_path: Path) -> None:
    """guard_proxy_tls_generate: the throw-away CA on the controller issues the listener's
    pair; the certificate file and the tls_key credential are that pair, and the certificate
    verifies for the inventory name and 127.0.0.1 against the CA."""
    ca_dir = tmp_path / "ca"
    out = tmp_path / "gen"
    out.mkdir()
    plays = [
        {
            "name": "Generate",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                checks_task("guard_proxy"),
                {
                    "name": "Issue the pair",
                    "ansible.builtin.include_role": {
                        "name": "guard_proxy",
                        "tasks_from": "tls_generate",
                    },
                },
                {
                    "name": "Write what the role would install",
                    "ansible.builtin.copy": {
                        "dest": str(out / "values.json"),
                        "mode": "0600",
                        "content": "{{ {'listener_tls': _guard_proxy_listener_tls | bool,"
                        " 'cert': _guard_proxy_tls_cert_pem,"
                        " 'key_matches': lookup('ansible.builtin.vars', (_guard_proxy_credentials"
                        " | selectattr('name', 'equalto', 'tls_key') | first).var)"
                        " == lookup('ansible.builtin.file', '" + str(ca_dir) + "/localhost-listener.key')}"
                        " | to_json }}",
                    },
                },
            ],
        }
    ]
    variables = {
        **BASE,
        "guard_proxy_tls_generate": True,
        "guard_proxy_tls_generate_dir": str(ca_dir),
        "guard_proxy_loadbalancers": ["localhost"],
        "haproxy_backend_tls": True,
    }
    run = run_playbook(tmp_path, plays, extra_vars=variables)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    assert "PRIVATE KEY" not in run.stdout + run.stderr
    values = json.loads((out / "values.json").read_text())
    assert values["listener_tls"] and values["key_matches"], values
    cert = out / "listener.crt"
    cert.write_text(values["cert"])
    for name in ("-verify_hostname", "-verify_ip"):
        target = "localhost" if name == "-verify_hostname" else "127.0.0.1"
        check = subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca_dir / "ca.crt"), name, target, str(cert)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0 and ": OK" in check.stdout, check.stdout + check.stderr
    wrong = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca_dir / "ca.crt"), "-verify_hostname", "other", str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0
