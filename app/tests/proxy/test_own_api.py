"""The own endpoints' FastAPI app: its OpenAPI document, its docs page, and the bytes it sends.

The own endpoints answer exactly as the rest of the proxy does (orjson bodies typed
``application/json; charset=utf-8``, the router's 404/405, HEAD like GET), their bodies match
the response models the OpenAPI document publishes, and the access middleware guards the
document like everything else.
"""

from __future__ import annotations

import httpx
import orjson
import pytest
from guard_proxy_testing.processes import ADMIN_TOKEN
from guard_proxy_testing.prom import sample
from guard_proxy_testing.proxies import StartApp

from guard_proxy.proxy.own import CacheHealthBody, CacheStatsBody, ClearedBody, HealthBody

JSON = "application/json; charset=utf-8"
OWN = {
    "/health": "get",
    "/ready": "get",
    "/cache/health": "get",
    "/cache/stats": "get",
    "/cache/clear": "post",
    "/metrics": "get",
}


def test_openapi_lists_the_own_endpoints_only(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert {path: list(ops) for path, ops in doc["paths"].items()} == {
        path: [method] for path, method in OWN.items()
    }
    schemas = doc["components"]["schemas"]
    assert set(schemas["HealthBody"]["required"]) == {
        "status",
        "summary",
        "version",
        "started_at",
        "uptime_s",
        "upstream",
        "cache",
    }
    clear = doc["paths"]["/cache/clear"]["post"]
    assert {"401", "403"} <= set(clear["responses"])
    (scheme,) = clear["security"][0]
    assert doc["components"]["securitySchemes"][scheme] == {
        "type": "http",
        "scheme": "bearer",
        "description": "access.admin_token",
    }


def test_docs_page(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def test_bodies_match_the_published_models(client: httpx.Client) -> None:
    health = client.get("/health")
    HealthBody.model_validate_json(health.content, strict=True)
    CacheHealthBody.model_validate_json(client.get("/cache/health").content)
    CacheStatsBody.model_validate_json(client.get("/cache/stats").content)
    cleared = client.post("/cache/clear", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    ClearedBody.model_validate_json(cleared.content, strict=True)


@pytest.mark.parametrize("path", ["/health", "/cache/health", "/cache/stats"])
def test_json_bytes_and_headers(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == JSON
    assert response.headers["content-length"] == str(len(response.content))
    # orjson's compact form: no spaces after separators, UTF-8 as is.
    assert response.content == orjson.dumps(response.json())


def test_metrics_content_type(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.text.startswith("# HELP guard_proxy_requests_total ")


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json"])
def test_head_answers_like_get(client: httpx.Client, path: str) -> None:
    head = client.head(path)
    assert head.status_code == 200
    assert head.content == b""


def test_wrong_method_is_the_routers_405(client: httpx.Client) -> None:
    response = client.post("/health")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json() == {"error": "method not allowed"}
    assert client.delete("/openapi.json").status_code == 405


def test_other_fastapi_paths_are_not_served(client: httpx.Client) -> None:
    for path in ("/redoc", "/docs/oauth2-redirect", "/openapi.yaml"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "not found"}


def test_denied_address_cannot_read_the_api_description(app_factory: StartApp) -> None:
    proxy = app_factory(env={"ACCESS_ALLOW": "10.1.0.0/16"})
    with proxy.client() as c:
        for path in ("/openapi.json", "/docs", "/health", "/ready"):
            response = c.get(path)
            assert response.status_code == 403
            assert response.json() == {"error": "forbidden: client address not allowed"}


def test_own_requests_are_counted_under_their_path(client: httpx.Client) -> None:
    client.get("/openapi.json")
    text = client.get("/metrics").text
    labels = {"route": "/openapi.json", "method": "GET", "status": "200"}
    assert sample(text, "guard_proxy_requests_total", **labels)
