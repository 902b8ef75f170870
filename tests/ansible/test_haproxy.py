"""The haproxy role without hosts: its checks (assert.yml, hard-stop-after against the
stream timeouts), the HAProxy time filter, and the play's serial."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, checks_task, run_assert_cases, run_playbook

FILTER = ROOT / "roles" / "haproxy" / "filter_plugins" / "haproxy_time.py"

BASE: dict[str, Any] = {
    "haproxy_allow_untested_platform": True,
    "haproxy_backend_hosts": ["localhost"],
}


def _seconds() -> Any:
    spec = importlib.util.spec_from_file_location("haproxy_time", FILTER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.haproxy_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("65m", 3900.0), ("1h", 3600.0), ("30s", 30.0), ("500", 0.5), (1500, 1.5), ("2d", 172800.0)],
)
def test_haproxy_times_in_seconds(value: Any, seconds: float) -> None:
    assert _seconds()(value) == seconds


def test_a_time_haproxy_refuses_names_itself() -> None:
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="'1h5m'"):
        _seconds()("1h5m")


def test_hard_stop_after_must_outlast_the_stream_timeouts(tmp_path: Path) -> None:
    results, output = run_assert_cases(
        tmp_path,
        {
            "defaults": BASE,
            "old_default": {**BASE, "haproxy_hard_stop_after": "10m"},
            "short_client": {**BASE, "haproxy_timeout_client": "2h"},
            "long_enough": {
                **BASE,
                "haproxy_hard_stop_after": "3h",
                "haproxy_timeout_server": "3h",
            },
        },
        role="haproxy",
    )
    assert results["defaults"]["ok"], output[-3000:]
    assert results["long_enough"]["ok"], output[-3000:]
    for case in ("old_default", "short_client"):
        assert not results[case]["ok"]
        assert results[case]["task"] == "Require hard-stop-after to outlast the stream timeouts"
        assert "every reload would cut the streams" in results[case]["msgs"][0]


def test_the_haproxy_play_changes_one_load_balancer_at_a_time() -> None:
    """Without serial, a change reloads every load balancer at once."""
    plays = yaml.safe_load((ROOT / "playbooks" / "haproxy.yml").read_text())
    play = next(p for p in plays if p.get("hosts") == "loadbalancer" and "roles" in p)
    assert play["serial"] == "{{ haproxy_rollout_batch | default(1) }}"
    assert play["max_fail_percentage"] == 0


def test_config_changes_never_notify_a_restart() -> None:
    """A drop-in or config change is applied by a reload: no task notifies a restart and
    the role has no restart handler (the first install restarts through its own task)."""
    role = ROOT / "roles" / "haproxy"
    handlers = yaml.safe_load((role / "handlers" / "main.yml").read_text())
    assert not [
        h for h in handlers if h["ansible.builtin.systemd_service"].get("state") == "restarted"
    ]
    for path in (role / "tasks").glob("*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            notify = task.get("notify", [])
            assert not [
                n for n in ([notify] if isinstance(notify, str) else notify) if "Restart" in n
            ]


# --- haproxy.cfg rendered with and without client TLS -----------------------------

CERT = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIGHtest-Zq7Secret\n-----END PRIVATE KEY-----\n"


def _render_cfg(tmp: Path, variables: dict[str, Any]) -> tuple[str, str]:
    out = tmp / "haproxy.cfg"
    plays = [
        {
            "name": "Render haproxy.cfg",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                checks_task("haproxy"),
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": str(ROOT / "roles/haproxy/templates/haproxy.cfg.j2"),
                        "dest": str(out),
                        "mode": "0600",
                    },
                },
            ],
        }
    ]
    run = run_playbook(tmp, plays, extra_vars=variables)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    return out.read_text(), run.stdout + run.stderr


def test_without_a_certificate_the_front_door_is_plain_http(tmp_path: Path) -> None:
    cfg, _ = _render_cfg(tmp_path, BASE)
    assert "    bind *:8080\n" in cfg
    assert " ssl " not in cfg and "ssl-default-bind" not in cfg and "redirect" not in cfg
    # The retry and state settings of item 5, whatever the TLS.
    assert "http-request disable-l7-retry unless METH_GET" in cfg
    assert "load-server-state-from-file global" in cfg
    assert "expose-fd listeners" in cfg


def test_tls_terminates_with_modern_defaults_and_http_redirects(tmp_path: Path) -> None:
    cfg, output = _render_cfg(tmp_path, {**BASE, "haproxy_tls_cert": CERT, "haproxy_tls_key": KEY})
    assert "Zq7Secret" not in output and "Zq7Secret" not in cfg
    assert "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets" in cfg
    bind = next(line for line in cfg.splitlines() if ":8443 ssl" in line).split()
    assert bind[:3] == ["bind", "*:8443", "ssl"]
    assert bind[bind.index("alpn") + 1] == "h2,http/1.1"
    assert bind[bind.index("crt") + 1].startswith("/etc/haproxy/tls/frontdoor-")
    assert "    bind *:8080\n" in cfg
    redirect = next(line for line in cfg.splitlines() if "http-request redirect" in line)
    assert "https://%[req.hdr(host),field(1,:)]:8443%[url] code 301 unless { ssl_fc }" in redirect


def test_tls_with_plain_http_off_binds_no_plain_port(tmp_path: Path) -> None:
    cfg, _ = _render_cfg(
        tmp_path,
        {
            **BASE,
            "haproxy_tls_cert": CERT,
            "haproxy_tls_key": KEY,
            "haproxy_tls_http": "off",
            "haproxy_tls_port": 443,
        },
    )
    assert "bind *:443 ssl" in cfg and "bind *:8080" not in cfg and "redirect" not in cfg


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    results, output = run_assert_cases(
        tmp_path,
        {
            "cert_only": {**BASE, "haproxy_tls_cert": CERT},
            "same_port": {
                **BASE,
                "haproxy_tls_cert": CERT,
                "haproxy_tls_key": KEY,
                "haproxy_tls_port": 8080,
            },
            "both": {**BASE, "haproxy_tls_cert": CERT, "haproxy_tls_key": KEY},
        },
        role="haproxy",
    )
    assert results["both"]["ok"], output[-3000:]
    for case in ("cert_only", "same_port"):
        assert not results[case]["ok"]
        assert results[case]["task"] == "Check the front door's certificate and key"
    assert "Zq7Secret" not in output


# --- Re-encryption to the proxies (haproxy_backend_tls) -----------------------------

CA = "-----BEGIN CERTIFICATE-----\nMIIBproxiesCA\n-----END CERTIFICATE-----\n"


def test_without_backend_tls_the_proxies_get_plain_http(tmp_path: Path) -> None:
    cfg, _ = _render_cfg(tmp_path, BASE)
    server = next(line.split() for line in cfg.splitlines() if line.strip().startswith("server "))
    assert server == ["server", "localhost", "localhost:8080"]
    assert "ssl-default-server" not in cfg and "ca-file" not in cfg


def test_backend_tls_verifies_each_proxy_and_checks_over_tls(tmp_path: Path) -> None:
    # Extra vars are in every host's hostvars: localhost is a proxy serving HTTPS.
    cfg, _ = _render_cfg(
        tmp_path,
        {
            **BASE,
            "haproxy_backend_tls": True,
            "haproxy_backend_tls_ca": CA,
            "guard_proxy_tls_generate": True,
            "haproxy_server_tls_name": "proxy.example.org",
        },
    )
    server = next(line.split() for line in cfg.splitlines() if line.strip().startswith("server "))
    assert server[:3] == ["server", "localhost", "localhost:8080"]
    options = server[3:]
    # Verified TLS for requests and checks, no option that would weaken it.
    assert options[:3] == ["ssl", "verify", "required"], server
    ca_file = options[options.index("ca-file") + 1]
    assert ca_file.startswith("/etc/haproxy/tls/proxies-ca-") and ca_file.endswith(".pem")
    assert options[options.index("sni") + 1] == "str(proxy.example.org)"
    assert options[options.index("verifyhost") + 1] == "proxy.example.org"
    assert "check-ssl" in options
    assert options[options.index("check-sni") + 1] == "proxy.example.org"
    assert "none" not in options and "no-ssl" not in options
    assert "ssl-default-server-options ssl-min-ver TLSv1.2 no-tls-tickets" in cfg
    # The front door itself stays as configured (plain here): the two are independent.
    assert "    bind *:8080\n" in cfg and "ssl-default-bind" not in cfg


_PROXY_FACTS = {"guard_proxy_tls_cert": "", "guard_proxy_tls_generate": False}


def test_the_hop_to_the_proxies_must_be_coherent(tmp_path: Path) -> None:
    """haproxy_backend_tls against the proxies' listeners (their hostvars): TLS to a plain
    proxy and plain HTTP to an HTTPS one are refused, naming the variables; a CA is required."""
    tls_proxy = {**_PROXY_FACTS, "guard_proxy_tls_cert": CERT}
    generated_proxy = {**_PROXY_FACTS, "guard_proxy_tls_generate": True}
    on = {**BASE, "haproxy_backend_tls": True, "haproxy_backend_tls_ca": CA}
    results, output = run_assert_cases(
        tmp_path,
        {
            "plain_to_plain": BASE,
            "tls_to_tls": on,
            "tls_to_generated": on,
            "generated_ca": {
                **BASE,
                "haproxy_backend_tls": True,
                "haproxy_tls_generate": True,
                "haproxy_tls_generate_dir": str(tmp_path),
            },
            "tls_to_plain": on,
            "plain_to_tls": BASE,
            "no_ca": {**BASE, "haproxy_backend_tls": True},
            "ca_not_pem": {**on, "haproxy_backend_tls_ca": "/etc/ssl/ca.pem"},
        },
        role="haproxy",
        facts={
            "plain_to_plain": _PROXY_FACTS,
            "tls_to_tls": tls_proxy,
            "tls_to_generated": generated_proxy,
            "generated_ca": tls_proxy,
            "tls_to_plain": _PROXY_FACTS,
            "plain_to_tls": tls_proxy,
            "no_ca": tls_proxy,
            "ca_not_pem": tls_proxy,
        },
    )
    for case in ("plain_to_plain", "tls_to_tls", "tls_to_generated", "generated_ca"):
        assert results[case]["ok"], (case, results[case], output[-3000:])
    flat = {case: " ".join(" ".join(r.get("msgs", [])).split()) for case, r in results.items()}
    assert not results["tls_to_plain"]["ok"]
    assert results["tls_to_plain"]["task"] == "Require the proxies' listeners to match haproxy_backend_tls"
    assert "haproxy_backend_tls is true but localhost serve plain HTTP" in flat["tls_to_plain"]
    assert "guard_proxy_tls_cert/_key" in flat["tls_to_plain"]
    assert not results["plain_to_tls"]["ok"]
    assert "localhost serve HTTPS on their listener" in flat["plain_to_tls"]
    assert "while haproxy_backend_tls is false" in flat["plain_to_tls"]
    for case in ("no_ca", "ca_not_pem"):
        assert not results[case]["ok"]
        assert results[case]["task"] == "Require the CA that verifies the proxies' certificates"
        assert "haproxy_backend_tls_ca" in flat[case]
    assert "Zq7Secret" not in output
