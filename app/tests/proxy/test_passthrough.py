"""Every native and /v1 route that is not guarded is carried unchanged, status and body."""

from __future__ import annotations

import hashlib
import json

import httpx
from guard_proxy_testing.processes import FakeOllama, free_port
from guard_proxy_testing.proxies import StartApp, ndjson


def test_root_get_and_head(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "Ollama is running"
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""


def test_version_get_and_head(client: httpx.Client) -> None:
    response = client.get("/api/version")
    assert response.status_code == 200
    assert response.json()["version"]
    assert client.head("/api/version").status_code == 200


def test_tags_and_ps(client: httpx.Client) -> None:
    tags = client.get("/api/tags").json()
    assert "llama3.2:latest" in [m["name"] for m in tags["models"]]
    ps = client.get("/api/ps").json()
    assert ps["models"][0]["size_vram"] > 0


def test_show_known_and_unknown(client: httpx.Client) -> None:
    shown = client.post("/api/show", json={"model": "llama3.2"})
    assert shown.status_code == 200
    assert shown.json()["details"]["family"] == "llama"
    missing = client.post("/api/show", json={"model": "no-such-model"})
    assert missing.status_code == 404
    assert "not found" in missing.json()["error"]


def test_copy_then_delete_with_json_body(client: httpx.Client, marker: str) -> None:
    name = f"copy-{marker}"
    copied = client.post("/api/copy", json={"source": "llama3.2", "destination": name})
    assert copied.status_code == 200
    assert name + ":latest" in [m["name"] for m in client.get("/api/tags").json()["models"]]
    deleted = client.request("DELETE", "/api/delete", json={"model": name})
    assert deleted.status_code == 200
    again = client.request("DELETE", "/api/delete", json={"model": name})
    assert again.status_code == 404
    assert "not found" in again.json()["error"]


def test_pull_streams_progress_lines(client: httpx.Client, marker: str) -> None:
    with client.stream("POST", "/api/pull", json={"model": f"pulled-{marker}"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[0] == {"status": "pulling manifest"}
    assert any("completed" in line for line in lines)
    assert lines[-1] == {"status": "success"}


def test_create_and_push_stream_progress(client: httpx.Client) -> None:
    for path in ("/api/create", "/api/push"):
        response = client.post(path, json={"model": "llama3.2"})
        assert response.status_code == 200
        assert ndjson(response.content)[-1] == {"status": "success"}
    not_streamed = client.post("/api/push", json={"model": "llama3.2", "stream": False})
    assert not_streamed.json() == {"status": "success"}


def test_blob_upload_streamed_and_checked(client: httpx.Client, marker: str) -> None:
    data = (marker * 5000).encode()  # larger than the body limit: uploads are streamed
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert client.head(f"/api/blobs/{digest}").status_code == 404

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    created = client.post(f"/api/blobs/{digest}", content=chunks())
    assert created.status_code == 201
    assert client.head(f"/api/blobs/{digest}").status_code == 200
    wrong = client.post(f"/api/blobs/{digest}", content=b"not the same bytes")
    assert wrong.status_code == 400
    assert "digest mismatch" in wrong.json()["error"]


def test_embed_and_legacy_embeddings(client: httpx.Client) -> None:
    embed = client.post("/api/embed", json={"model": "llama3.2", "input": ["a", "b"]})
    assert embed.status_code == 200
    assert len(embed.json()["embeddings"]) == 2
    legacy = client.post("/api/embeddings", json={"model": "llama3.2", "prompt": "a"})
    assert legacy.status_code == 200
    assert isinstance(legacy.json()["embedding"], list)


def test_v1_models_list_and_one(client: httpx.Client) -> None:
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    assert "llama3.2:latest" in [m["id"] for m in listed["data"]]
    one = client.get("/v1/models/llama3.2:latest")
    assert one.status_code == 200
    assert one.json()["id"] == "llama3.2:latest"
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


def test_v1_models_is_get_only(client: httpx.Client) -> None:
    assert client.post("/v1/models", json={}).status_code == 405


def test_v1_embeddings(client: httpx.Client) -> None:
    response = client.post("/v1/embeddings", json={"model": "llama3.2", "input": "hello"})
    assert response.status_code == 200
    assert response.json()["data"][0]["object"] == "embedding"


def test_query_string_and_headers_reach_upstream(
    client: httpx.Client, fake_ollama: FakeOllama, marker: str
) -> None:
    response = client.post(
        "/api/show?verbose=true",
        json={"model": "llama3.2", "tag": marker},
        headers={"X-Trace-Id": marker},
    )
    assert response.status_code == 200
    (seen,) = fake_ollama.requests(marker)
    assert seen["query"] == "verbose=true"
    assert seen["headers"]["x-trace-id"] == marker


def test_upstream_unreachable_is_502_in_each_format(app_factory: StartApp) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy = app_factory(upstream=dead)
    with proxy.client() as c:
        native = c.get("/api/tags")
        assert native.status_code == 502
        assert (
            "cannot reach Ollama" in native.json()["error"] or "connect" in native.json()["error"]
        )
        v1 = c.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert v1.status_code == 502
        assert v1.json()["error"]["type"] == "api_error"
        health = c.get("/health").json()
        assert health["upstream"]["reachable"] is False
