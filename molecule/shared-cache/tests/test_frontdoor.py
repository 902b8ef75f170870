"""Client TLS at the front door: lb1 and lb2 terminate TLS on 8443 with a certificate from
the throw-away CA (.work/tls-ca, haproxy_tls_generate), HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2
and newer only; their plain-HTTP port 8080 only redirects to https://. Clients run on
redis1, which trusts the throw-away CA (conftest's trusted_ca)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from gplib import http, name_of, podman_exec_stdin, wait_for

CA = "/usr/local/share/ca-certificates/gp-test-ca.crt"

# A TLS handshake from inside a host: argv host port cafile ("" = the system's store)
# [max-version]; prints the protocol, ALPN and the peer's certificate subject, or the error.
_HANDSHAKE = r"""
import json, socket, ssl, sys
host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile or None)
if not cafile:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing
if len(sys.argv) > 4:
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = getattr(ssl.TLSVersion, sys.argv[4])
    ctx.set_ciphers("ALL:@SECLEVEL=0")
ctx.set_alpn_protocols(["h2", "http/1.1"])
try:
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            print(json.dumps({"ok": True, "version": tls.version(),
                              "alpn": tls.selected_alpn_protocol(),
                              "san": tls.getpeercert().get("subjectAltName")}))
except Exception as exc:
    print(json.dumps({"ok": False, "error": repr(exc)}))
"""

# One plain-HTTP request that does not follow redirects: prints status and Location.
_NO_REDIRECT = r"""
import http.client, json, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
conn.request(sys.argv[3], sys.argv[4], body=sys.argv[5] or None,
             headers={"Content-Type": "application/json"})
r = conn.getresponse()
print(json.dumps({"status": r.status, "location": r.getheader("Location")}))
"""


def _handshake(
    client: Any, host: str, cafile: str, max_version: str = "", port: str = "8443"
) -> dict[str, Any]:
    args = [host, port, cafile] + ([max_version] if max_version else [])
    out = client.check_output("python3 -c %s " + " ".join(["%s"] * len(args)), _HANDSHAKE, *args)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("lb", ["lb1", "lb2"])
def test_https_through_each_front_door_verifies_with_the_ca(
    lb: str, redis_host: Any, trusted_ca: str
) -> None:
    got = _handshake(redis_host, lb, CA)
    assert got["ok"], got
    assert got["version"] in ("TLSv1.2", "TLSv1.3") and got["alpn"] == "h2", got
    assert ["DNS", lb] in got["san"], got
    # The system's store trusts the CA too: an ordinary client request goes through.
    r = http(
        redis_host,
        "POST",
        f"https://{lb}:8443/api/generate",
        {"model": "llama3.2", "prompt": "ECHO:tls", "stream": False},
    )
    assert r["status"] == 200 and r["json"]["response"], r
    # Without the CA the certificate is not trusted: verification is real.
    untrusted = _handshake(redis_host, lb, "")
    assert not untrusted["ok"] and "CERTIFICATE_VERIFY_FAILED" in untrusted["error"], untrusted


@pytest.mark.parametrize("lb", ["lb1", "lb2"])
def test_old_tls_versions_are_refused(lb: str, redis_host: Any, trusted_ca: str) -> None:
    old = _handshake(redis_host, lb, CA, "TLSv1_1")
    assert not old["ok"], old


@pytest.mark.parametrize("lb", ["lb1", "lb2"])
def test_plain_http_only_redirects(lb: str, redis_host: Any, proxy1: Any) -> None:
    """A POST on 8080 gets a 301 to the same path on https://<lb>:8443 and reaches no
    proxy (nothing is forwarded in clear)."""
    marker = "/api/generate?plain-" + lb
    out = redis_host.check_output(
        "python3 -c %s %s %s %s %s %s",
        _NO_REDIRECT,
        lb,
        "8080",
        "POST",
        marker,
        json.dumps({"model": "llama3.2", "prompt": "ECHO:clear", "stream": False}),
    )
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {"status": 301, "location": f"https://{lb}:8443{marker}"}, got


def test_the_key_is_readable_by_haproxy_only(lb1: Any, lb2: Any) -> None:
    for lb in (lb1, lb2):
        files = [f for f in lb.check_output("ls /etc/haproxy/tls").split() if f.startswith("frontdoor-")]
        assert len(files) == 1, (name_of(lb), files)
        pem = lb.file("/etc/haproxy/tls/" + files[0])
        assert (pem.user, pem.group, pem.mode) == ("root", "haproxy", 0o640)
        tls_dir = lb.file("/etc/haproxy/tls")
        assert (tls_dir.user, tls_dir.group, tls_dir.mode) == ("root", "haproxy", 0o750)
        assert "PRIVATE KEY" in pem.content_string


# --- Re-encryption: HAProxy -> proxies over verified TLS (haproxy_backend_tls) --------------

# One runtime API command on a socket of the host: argv socket command; prints the answer.
_RUNTIME = r"""
import socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(sys.argv[2].encode() + b"\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
print(out.decode())
"""

ADMIN_SOCKET = "/run/haproxy/admin.sock"
PROXIES = ("proxy1", "proxy2")


def _runtime(lb: Any, command: str, sock: str = ADMIN_SOCKET) -> str:
    return str(lb.check_output("python3 -c %s %s %s", _RUNTIME, sock, command))


def _servers_state(lb: Any, sock: str = ADMIN_SOCKET) -> dict[str, dict[str, str]]:
    """`show servers state` by server name (its columns by their names in the header)."""
    lines = [ln for ln in _runtime(lb, "show servers state", sock).splitlines() if ln.strip()]
    header = next(ln for ln in lines if ln.startswith("# be_id")).lstrip("# ").split()
    rows = [dict(zip(header, ln.split(), strict=False)) for ln in lines[1:] if not ln.startswith("#")]
    return {row["srv_name"]: row for row in rows}


def _stat(lb: Any, sock: str = ADMIN_SOCKET) -> dict[tuple[str, str], dict[str, str]]:
    """`show stat` rows by (backend, server)."""
    import csv

    rows = csv.DictReader(_runtime(lb, "show stat", sock).lstrip("# ").splitlines())
    return {(r["pxname"], r["svname"]): r for r in rows if r.get("pxname")}


@pytest.mark.parametrize("lb", ["lb1", "lb2"])
def test_haproxy_forwards_to_the_proxies_over_verified_tls(
    lb: str, request: pytest.FixtureRequest
) -> None:
    """Each server line verifies the proxy's certificate against the CA the role installed
    (the throw-away CA), with the proxy's name as SNI and verified host, health checks
    included; the live servers use TLS and are UP."""
    host = request.getfixturevalue(lb)
    cfg = host.file("/etc/haproxy/haproxy.cfg").content_string
    ca_files = [f for f in host.check_output("ls /etc/haproxy/tls").split() if f.startswith("proxies-ca-")]
    assert len(ca_files) == 1, ca_files
    ca_file = "/etc/haproxy/tls/" + ca_files[0]
    ca = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".work" / "tls-ca" / "ca.crt"
    assert host.file(ca_file).content_string.strip() == ca.read_text().strip()
    for proxy in PROXIES:
        line = next(ln.split() for ln in cfg.splitlines() if ln.strip().startswith(f"server {proxy} "))
        assert line[2] == f"{proxy}:8080", line
        options = " ".join(line[3:])
        assert (
            f"ssl verify required ca-file {ca_file} sni str({proxy}) verifyhost {proxy}"
            f" check-ssl check-sni {proxy}" in options
        ), line
    state = _servers_state(host)
    for proxy in PROXIES:
        assert state[proxy]["srv_use_ssl"] == "1", state[proxy]
        assert state[proxy]["srv_op_state"] == "2", state[proxy]  # 2 = running (UP)
    stat = _stat(host)
    for proxy in PROXIES:
        assert stat[("guard_proxy", proxy)]["status"] == "UP", stat[("guard_proxy", proxy)]
        assert stat[("guard_proxy", proxy)]["check_status"] == "L7OK"


def test_the_proxies_serve_https_only(lb1: Any, proxy1: Any) -> None:
    """A proxy's port speaks TLS only, with a certificate for its name from the CA: plain
    HTTP gets no answer, so HAProxy's UP servers are reached over TLS."""
    assert http(lb1, "GET", "https://proxy1:8080/ready")["status"] == 200
    plain = http(lb1, "GET", "http://proxy1:8080/ready")
    assert plain["status"] == 0, plain
    cert = proxy1.file("/etc/guard-proxy/listener.crt")
    assert (cert.user, cert.group, cert.mode) == ("root", "guard-proxy", 0o640)
    got = _handshake(lb1, "proxy1", CA, port="8080")
    assert got["ok"] and ["DNS", "proxy1"] in got["san"], got


# A throw-away HAProxy on lb1 checking proxy1 four ways (argv: its config path).
_BAD_CA = (
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    " -subj /CN=not-the-stack-ca -keyout /tmp/gp-other-ca.key -out /tmp/gp-other-ca.pem"
)


def test_haproxy_refuses_a_proxy_it_cannot_verify(lb1: Any) -> None:
    """Verification is real: the live config's server options against proxy1 pass, the same
    options with another host name or another CA fail at the TLS layer, and plain HTTP to the
    proxy fails too; the three are DOWN, the first UP. Runs a second HAProxy on lb1 with
    its own runtime socket, stopped at the end."""
    ca_file = next(
        "/etc/haproxy/tls/" + f
        for f in lb1.check_output("ls /etc/haproxy/tls").split()
        if f.startswith("proxies-ca-")
    )
    lb1.check_output(_BAD_CA)
    tls = "ssl verify required ca-file {ca} sni str({name}) verifyhost {name} check-ssl check-sni {name}"
    servers = {
        "good": tls.format(ca=ca_file, name="proxy1"),
        "wrong_name": tls.format(ca=ca_file, name="not-proxy1.invalid"),
        "wrong_ca": tls.format(ca="/tmp/gp-other-ca.pem", name="proxy1"),
        "plain": "",
    }
    sock = "/tmp/gp-verify-haproxy.sock"
    cfg = "\n".join(
        [
            "global",
            f"    stats socket {sock} mode 600 level admin",
            "defaults",
            "    mode http",
            "    timeout connect 5s",
            "    timeout client 10s",
            "    timeout server 10s",
            "    timeout check 5s",
            "frontend gp_verify",
            "    bind 127.0.0.1:18443",
            "    default_backend gp_verify",
            "backend gp_verify",
            "    option httpchk",
            "    http-check send meth GET uri /ready",
            "    http-check expect status 200",
            "    default-server check inter 1s fall 1 rise 1",
            *[f"    server {name} proxy1:8080 {opts}".rstrip() for name, opts in servers.items()],
            "",
        ]
    )
    podman_exec_stdin(name_of(lb1), "cat > /tmp/gp-verify-haproxy.cfg", cfg)
    lb1.check_output("haproxy -c -q -f /tmp/gp-verify-haproxy.cfg")
    lb1.check_output("haproxy -D -p /tmp/gp-verify-haproxy.pid -f /tmp/gp-verify-haproxy.cfg")
    try:

        def settled() -> dict[str, dict[str, str]] | None:
            stat = {sv: row for (px, sv), row in _stat(lb1, sock).items() if px == "gp_verify"}
            rows = {name: stat[name] for name in servers}
            done = rows["good"]["status"] == "UP" and rows["good"]["check_status"] == "L7OK"
            done = done and all(rows[n]["status"].startswith("DOWN") for n in servers if n != "good")
            return rows if done else None

        rows = wait_for(settled, timeout=60, interval=1)
        assert rows, {n: (r["status"], r["check_status"]) for n, r in _stat(lb1, sock).items()}
        # Refused at the TLS layer (L6: SSL handshake), not by an HTTP answer.
        for name in ("wrong_name", "wrong_ca"):
            assert rows[name]["check_status"].startswith("L6"), (name, rows[name]["check_status"])
    finally:
        lb1.run("kill $(cat /tmp/gp-verify-haproxy.pid)")
        lb1.run("rm -f /tmp/gp-verify-haproxy.cfg /tmp/gp-other-ca.key /tmp/gp-other-ca.pem")
