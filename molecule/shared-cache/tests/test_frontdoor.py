"""Client TLS at the front door: lb1 and lb2 terminate TLS on 8443 with a certificate from
the throw-away CA (.work/tls-ca, haproxy_tls_generate), HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2
and newer only; their plain-HTTP port 8080 only redirects to https://. Clients run on
redis1, which trusts the throw-away CA (conftest's trusted_ca)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gplib import http, name_of

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


def _handshake(client: Any, host: str, cafile: str, max_version: str = "") -> dict[str, Any]:
    args = [host, "8443", cafile] + ([max_version] if max_version else [])
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
        files = lb.check_output("ls /etc/haproxy/tls").split()
        assert len(files) == 1 and files[0].startswith("frontdoor-"), (name_of(lb), files)
        pem = lb.file("/etc/haproxy/tls/" + files[0])
        assert (pem.user, pem.group, pem.mode) == ("root", "haproxy", 0o640)
        tls_dir = lb.file("/etc/haproxy/tls")
        assert (tls_dir.user, tls_dir.group, tls_dir.mode) == ("root", "haproxy", 0o750)
        assert "PRIVATE KEY" in pem.content_string
