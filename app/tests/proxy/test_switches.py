"""Guard off and cache off: the proxy forwards everything and says so in X-Guard-Cache."""

from __future__ import annotations

from guard_proxy_testing.proxies import INPUT_TERM, OUTPUT_TERM, StartApp, ndjson


def test_guard_disabled_scans_nothing(app_factory: StartApp) -> None:
    proxy = app_factory(env={"GUARD_ENABLED": "false"})
    with proxy.client() as c:
        response = c.post(
            "/api/generate",
            json={"model": "llama3.2", "prompt": f"ECHO:{INPUT_TERM} {OUTPUT_TERM}"},
        )
        assert response.status_code == 200
        assert response.headers["x-guard-cache"] == "disabled"
        text = "".join(line.get("response", "") for line in ndjson(response.content))
        assert text == f"{INPUT_TERM} {OUTPUT_TERM}"


def test_cache_disabled_still_guards(app_factory: StartApp) -> None:
    proxy = app_factory(env={"CACHE_ENABLED": "false"})
    with proxy.client() as c:
        ok = c.post("/api/generate", json={"model": "llama3.2", "prompt": "hi", "stream": False})
        assert ok.status_code == 200
        assert ok.headers["x-guard-cache"] == "disabled"
        blocked = c.post("/api/generate", json={"model": "llama3.2", "prompt": INPUT_TERM})
        assert blocked.status_code == 400
        assert blocked.headers["x-guard-cache"] == "disabled"
        assert c.get("/health").json()["cache"] == {"enabled": False, "active_backend": "none"}
