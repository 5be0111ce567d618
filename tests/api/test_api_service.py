"""Health, readiness, metrics, OpenAPI, API keys and the sample gallery, over real HTTP."""

from __future__ import annotations

import hashlib
import io

import httpx
import pytest
from api.live_server import LiveServer
from PIL import Image

from mmrag.config import ApiKey, AuthSettings, SampleSettings, Settings

PROBLEM = "application/problem+json"


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (9, 99, 199)).save(out, "PNG")
    return out.getvalue()


def test_health_readiness_metrics_and_docs(live_api: httpx.Client) -> None:
    assert live_api.get("/healthz").json() == {"status": "ok"}
    ready = live_api.get("/readyz")
    assert ready.status_code == 200
    tools = {tool: "ok" for tool in ("caption", "vqa", "ground", "detect")}  # embedded runner
    assert ready.json() == {
        "ready": True,
        "checks": {"store": "ok", "embedder": "ok"},
        # The tests' settings pin torch (tests/models/test_backends.py covers the rest).
        "embedding": {"backend": "torch", "precision": "fp32", "reason": "configured torch/auto"},
        "tools": tools,
        "builds": {},  # every fixture model was in the cache at start: nothing to build
    }

    live_api.post("/v1/images", files=[("files", ("a.png", png_bytes(), "image/png"))])
    metrics = live_api.get("/metrics").text
    assert "mmrag_indexed_images 1.0" in metrics
    assert "mmrag_store_up 1.0" in metrics
    assert 'mmrag_ingested_images_total{outcome="indexed",tenant="default"} 1.0' in metrics
    posted = 'method="POST",route="/v1/images",status="201",tenant="default"'
    assert f"mmrag_http_requests_total{{{posted}}} 1.0" in metrics

    schema = live_api.get("/openapi.json").json()
    assert {"/v1/images", "/v1/search", "/v1/images/{image_id}", "/v1/caption"} <= set(
        schema["paths"]
    )


def test_readiness_fails_when_the_model_cannot_load(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"models": settings.models.model_copy(update={"embedder": "local:/nonexistent"})}
    )
    with LiveServer(broken) as server, httpx.Client(base_url=server.url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"] == "ok"
        assert "nonexistent" in ready.json()["checks"]["embedder"]
        search = client.post("/v1/search", json={"text": "x"})
        assert search.status_code == 503
        assert search.headers["content-type"].startswith(PROBLEM)
        assert "Retry-After" in search.headers


def key(name: str, secret: str, *scopes: str) -> ApiKey:
    return ApiKey.model_validate(
        {"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest(), "scopes": scopes}
    )


@pytest.fixture
def secured(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "auth": AuthSettings(
                api_keys=[
                    key("reader", "r-secret", "read"),
                    key("writer", "w-secret", "read", "write"),
                ]
            )
        }
    )


def test_api_keys(secured: Settings) -> None:
    upload = {"files": [("files", ("a.png", png_bytes(), "image/png"))]}
    with LiveServer(secured) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200  # probes need no key

        anonymous = client.post("/v1/search", json={"text": "x"})
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith(PROBLEM)
        assert anonymous.headers["www-authenticate"] == "Bearer"

        wrong = client.post("/v1/search", json={"text": "x"}, headers={"x-api-key": "nope"})
        assert wrong.status_code == 401

        reader = {"authorization": "Bearer r-secret"}
        assert client.post("/v1/search", json={"text": "x"}, headers=reader).status_code == 200
        forbidden = client.post("/v1/images", headers=reader, **upload)  # type: ignore[arg-type]
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"].startswith(PROBLEM)

        writer = {"x-api-key": "w-secret"}
        created = client.post("/v1/images", headers=writer, **upload)  # type: ignore[arg-type]
        assert created.status_code == 201
        assert client.get("/v1/images", headers=reader).json()["total"] == 1


def test_sample_gallery_is_indexed_once(settings: Settings) -> None:
    with_samples = settings.model_copy(update={"samples": SampleSettings(enabled=True, shapes=4)})
    with LiveServer(with_samples) as server, httpx.Client(base_url=server.url) as client:
        listed = client.get("/v1/images", params={"limit": 200}).json()
        galleries = {item["metadata"]["gallery"] for item in listed["items"]}
        assert galleries == {"scikit-image", "shapes"}
        assert {item["source"]["kind"] for item in listed["items"]} == {"sample"}
        no_samples = client.post(
            "/v1/search", json={"text": "a cat", "filter": {"source": "upload"}}
        ).json()
        assert no_samples["results"] == []
        assert listed["total"] >= 14
        astronaut = client.post(
            "/v1/search", json={"text": "astronaut", "target": "hybrid", "limit": 1}
        ).json()["results"][0]
        assert "astronaut" in astronaut["caption"]
        first_total = listed["total"]
        gone = listed["items"][0]["id"]
        assert client.delete(f"/v1/images/{gone}").status_code == 204

    # A restart does not bring a deleted sample back.
    with LiveServer(with_samples) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/v1/images").json()["total"] == first_total - 1
