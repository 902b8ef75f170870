"""Access control: IPv4/IPv6 allow-list, X-Forwarded-For from trusted proxies, admin token."""

from __future__ import annotations

import httpx
import pytest
from guard_proxy_testing.inproc import InProcessProxy
from guard_proxy_testing.processes import ADMIN_TOKEN
from guard_proxy_testing.proxies import StartApp


@pytest.fixture(scope="module")
def restricted(app_factory: StartApp) -> InProcessProxy:
    """Only 10.1.0.0/16 and 2001:db8::/32 may talk; 127.0.0.1 is a trusted reverse proxy."""
    return app_factory(
        config={
            "access": {
                "allow": ["10.1.0.0/16", "2001:db8::/32"],
                "trusted_proxies": ["127.0.0.1/32"],
            }
        }
    )


def test_peer_not_allowed_is_403(app_factory: StartApp) -> None:
    proxy = app_factory(config={"access": {"allow": ["10.0.0.0/8", "::1/128"]}})
    with proxy.client() as c:
        response = c.get("/api/tags")
        assert response.status_code == 403
        assert "not allowed" in response.json()["error"]
        v1 = c.get("/v1/models")
        assert v1.status_code == 403
        assert v1.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("xff", "status"),
    [
        ("10.1.2.3", 200),
        ("10.2.0.1", 403),
        ("2001:db8::5", 200),
        ("2001:db9::5", 403),
        ("10.2.0.1, 10.1.2.3", 200),  # right-most untrusted hop is the client
        ("10.1.2.3, 10.2.0.1", 403),
        ("10.1.2.3, 127.0.0.1", 200),  # trusted proxies in the chain are skipped
        ("not-an-ip", 403),
    ],
)
def test_forwarded_for_from_trusted_proxy(
    restricted: InProcessProxy, xff: str, status: int
) -> None:
    with restricted.client() as c:
        assert c.get("/api/version", headers={"X-Forwarded-For": xff}).status_code == status


def test_no_forwarded_for_means_the_peer(restricted: InProcessProxy) -> None:
    with restricted.client() as c:
        assert c.get("/api/version").status_code == 403


def test_forwarded_for_ignored_from_untrusted_peer(app_factory: StartApp) -> None:
    proxy = app_factory(
        config={"access": {"allow": ["10.1.0.0/16"], "trusted_proxies": ["192.0.2.1/32"]}}
    )
    with proxy.client() as c:
        assert c.get("/api/version", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 403


def test_access_env_variables(app_factory: StartApp) -> None:
    proxy = app_factory(
        env={"ACCESS_ALLOW": "10.1.0.0/16", "ACCESS_TRUSTED_PROXIES": "127.0.0.0/8"}
    )
    with proxy.client() as c:
        assert c.get("/api/version", headers={"X-Forwarded-For": "10.1.0.9"}).status_code == 200
        assert c.get("/api/version").status_code == 403


def test_clear_requires_the_admin_token(client: httpx.Client) -> None:
    missing = client.post("/cache/clear")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.post("/cache/clear", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    basic = client.post("/cache/clear", headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert basic.status_code == 401
    ok = client.post("/cache/clear", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200
    assert isinstance(ok.json()["cleared"], int)


def test_no_admin_token_disables_admin_routes(app_factory: StartApp) -> None:
    proxy = app_factory(env={"GUARD_PROXY_ADMIN_TOKEN": ""})
    with proxy.client() as c:
        response = c.post("/cache/clear", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403
        assert "no admin token is configured" in response.json()["error"]


def test_admin_token_from_file(app_factory: StartApp, tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "token"
    path.write_text("file-token-123\n")
    proxy = app_factory(
        env={"GUARD_PROXY_ADMIN_TOKEN": "", "GUARD_PROXY_ADMIN_TOKEN_FILE": str(path)}
    )
    with proxy.client() as c:
        assert (
            c.post("/cache/clear", headers={"Authorization": "Bearer file-token-123"}).status_code
            == 200
        )
    assert "file-token-123" not in proxy.logs()
