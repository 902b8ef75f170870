"""One schema per body: ``/ready``, ``/cache/health`` and ``/cache/stats`` answer exactly the
:mod:`guard_proxy.api_models` models the CLI reads, and the OpenAPI document's schemas for
these routes are generated from those same models.

In process (``httpx.ASGITransport`` over the real app, the fake Ollama as upstream, the cache
on memory): the bodies are real answers of the app, and each one parses into its model and
dumps back to the same JSON, with no field the model does not declare.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from guard_proxy_testing.guards import banned_guard
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from guard_proxy.api_models import CacheHealthBody, CacheStatsBody, ReadyBody
from guard_proxy.cache import GuardCache
from guard_proxy.config import load_settings
from guard_proxy.proxy import create_app

JSON = "application/json; charset=utf-8"
ROUTES: dict[str, type[BaseModel]] = {
    "/ready": ReadyBody,
    "/cache/health": CacheHealthBody,
    "/cache/stats": CacheStatsBody,
}


async def _client(fake_ollama: Any, env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        None, {"OLLAMA_URL": fake_ollama.url, "CACHE_BACKEND": "memory", **env}
    )
    cache = GuardCache.from_settings(settings)
    await cache.start()
    app = create_app(settings, banned_guard(), cache)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            yield client
    finally:
        await cache.aclose()


@pytest.fixture
async def client(fake_ollama: Any) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(fake_ollama, {}):
        yield c


def _undeclared(model: BaseModel, where: str = "") -> list[str]:
    """Fields of a parsed body that its model does not declare (at any depth)."""
    found = [f"{where}{name}" for name in model.model_extra or {}]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                found += _undeclared(item, f"{where}{name}.")
    return found


def _round_trip(model: type[BaseModel], body: dict[str, Any]) -> None:
    parsed = model.model_validate(body, strict=True)
    assert _undeclared(parsed) == []
    assert parsed.model_dump(mode="json", exclude_unset=True) == body


@pytest.mark.parametrize("path", list(ROUTES))
async def test_real_answers_round_trip_through_their_models(
    client: httpx.AsyncClient, path: str
) -> None:
    await client.post("/api/generate", json={"model": "m", "prompt": "hi", "stream": False})
    response = await client.get(path)
    assert response.status_code == 200, response.text
    _round_trip(ROUTES[path], response.json())


async def test_not_ready_round_trips_too(fake_ollama: Any) -> None:
    # cache.require_redis with Redis off: 503, the reasons say why.
    env = {"CACHE_BACKEND": "auto", "CACHE_REQUIRE_REDIS": "true", "REDIS_PORT": "1"}
    async for client in _client(fake_ollama, env):
        response = await client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        _round_trip(ReadyBody, body)
        assert body["status"] == "not ready" and body["reasons"]


def _without_null_defaults(schema: Any) -> Any:
    """FastAPI leaves out ``"default": null`` in response schemas; pydantic keeps it."""
    if isinstance(schema, dict):
        return {
            k: _without_null_defaults(v)
            for k, v in schema.items()
            if not (k == "default" and v is None)
        }
    if isinstance(schema, list):
        return [_without_null_defaults(v) for v in schema]
    return schema


async def test_the_openapi_schemas_are_the_models(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    _, generated = models_json_schema(
        [(model, "serialization") for model in ROUTES.values()],
        ref_template="#/components/schemas/{model}",
    )
    published = doc["components"]["schemas"]
    for name, schema in generated["$defs"].items():
        assert _without_null_defaults(published[name]) == _without_null_defaults(schema), name
    for path, model in ROUTES.items():
        responses = doc["paths"][path]["get"]["responses"]
        ref = responses["200"]["content"][JSON]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{model.__name__}"
    ready_503 = doc["paths"]["/ready"]["get"]["responses"]["503"]
    assert ready_503["content"][JSON]["schema"]["$ref"] == "#/components/schemas/ReadyBody"
