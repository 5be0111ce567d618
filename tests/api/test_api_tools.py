"""``/v1/caption``, ``/v1/vqa``, ``/v1/ground``, ``/v1/detect`` over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api.live_server import LiveServer
from workers.shapes_scenes import held_out, png_of
from workers.worker_settings import with_models

from mmrag.config import Settings
from mmrag.testing.redis_server import RedisServer

PROBLEM = "application/problem+json"


@pytest.fixture
def tools_api(
    settings: Settings, tiny_vlm_spec: str, tiny_grounding_spec: str
) -> Iterator[httpx.Client]:
    with (
        LiveServer(with_models(settings, tiny_vlm_spec, tiny_grounding_spec)) as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        yield client


def upload_scene(client: httpx.Client, seed_index: int = 0) -> str:
    scene = held_out(seed_index + 1)[seed_index]
    response = client.post("/v1/images", files=[("files", ("s.png", png_of(scene), "image/png"))])
    assert response.status_code == 201, response.text
    image_id: str = response.json()["items"][0]["id"]
    return image_id


def assert_problem(response: httpx.Response, status: int, detail: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("/v1/vqa", {"question": ""}, 422, "question"),
        ("/v1/vqa", {"question": "why? " * 2_000}, 422, "question"),
        ("/v1/ground", {"phrases": []}, 422, "phrases"),
        ("/v1/ground", {"phrases": ["a red circle"] * 500}, 422, "phrases"),
        ("/v1/detect", {"labels": []}, 422, "labels"),
        ("/v1/caption", {"detail": "epic"}, 422, "detail"),
        ("/v1/caption", {"surprise": True}, 422, "surprise"),
        ("/v1/caption", {"model": "nonsense"}, 400, "malformed model spec"),
        ("/v1/caption", {"model": "hf:someone/else"}, 400, "not served here"),
        ("/v1/caption", {"model": "warp:drive"}, 400, "unknown model scheme"),
    ],
)
def test_bad_arguments_are_refused(
    tools_api: httpx.Client, path: str, body: dict[str, object], status: int, detail: str
) -> None:
    image_id = upload_scene(tools_api)
    assert_problem(tools_api.post(path, json={"image_id": image_id, **body}), status, detail)


def test_bad_bodies_are_refused(tools_api: httpx.Client) -> None:
    assert_problem(
        tools_api.post(
            "/v1/caption", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "not valid JSON",
    )
    assert_problem(tools_api.post("/v1/caption", json=[1, 2]), 422, "JSON object")
    assert_problem(
        tools_api.post(
            "/v1/ground", content=b"\xaa\xff[", headers={"content-type": "application/json"}
        ),
        422,
        "not UTF-8",
    )
    assert_problem(
        tools_api.post("/v1/caption", content=b"hi", headers={"content-type": "text/plain"}),
        422,
        "multipart",
    )
    assert_problem(tools_api.post("/v1/caption", json={}), 422, "exactly one of")
    assert_problem(tools_api.post("/v1/caption", json={"image_id": "xyz"}), 422, "image_id")
    assert_problem(tools_api.post("/v1/caption", json={"image_id": "0" * 32}), 404, "no image")


def test_a_corrupt_upload_is_415_and_stores_nothing(tools_api: httpx.Client) -> None:
    response = tools_api.post(
        "/v1/caption", files=[("file", ("x.png", b"\x89PNG\r\n\x1a\nbroken", "image/png"))]
    )
    assert_problem(response, 415)
    assert tools_api.get("/v1/images").json()["total"] == 0


def test_an_upload_and_an_id_together_are_refused(tools_api: httpx.Client) -> None:
    image_id = upload_scene(tools_api)
    scene = held_out(1)[0]
    response = tools_api.post(
        "/v1/caption",
        data={"image_id": image_id},
        files=[("file", ("s.png", png_of(scene), "image/png"))],
    )
    assert_problem(response, 422, "exactly one of")


@pytest.mark.slow
def test_caption_an_upload_then_ground_and_ask_about_it(
    tools_api: httpx.Client, tiny_vlm_spec: str, tiny_grounding_spec: str
) -> None:
    scene = held_out(1, lambda s: s.has("blue", "triangle"))[0]
    response = tools_api.post(
        "/v1/caption", files=[("file", ("s.png", png_of(scene), "image/png"))]
    )
    assert response.status_code == 200, response.text
    body = response.json()
    image_id = body["image_id"]
    assert body["model"] == tiny_vlm_spec
    assert isinstance(body["caption"], str)  # random weights: the words are noise
    # The upload was indexed and the model's caption written back.
    assert tools_api.get(f"/v1/images/{image_id}").json()["caption"] == body["caption"]

    grounded = tools_api.post(
        "/v1/ground", json={"image_id": image_id, "phrases": ["the blue triangle"]}
    ).json()
    width, height = scene.image.size
    assert (grounded["width"], grounded["height"]) == (width, height)
    assert grounded["counts"] == {"the blue triangle": len(grounded["boxes"])}
    for found in grounded["boxes"]:
        x1, y1, x2, y2 = found["box"]
        assert 0 <= x1 <= x2 <= width, grounded
        assert 0 <= y1 <= y2 <= height, grounded

    answer = tools_api.post(
        "/v1/vqa", json={"image_id": image_id, "question": "what colour is the triangle?"}
    ).json()
    assert isinstance(answer["answer"], str)
    assert answer["score"] is None or 0.0 <= answer["score"] <= 1.0

    wrong_model = tools_api.post(
        "/v1/caption", json={"image_id": image_id, "model": tiny_grounding_spec}
    )
    assert_problem(wrong_model, 422, "does not serve caption")


def test_no_worker_is_503_with_retry_after(
    settings: Settings, tiny_vlm_spec: str, tiny_grounding_spec: str
) -> None:
    with RedisServer(settings.data_dir.parent / "redis") as redis_server:
        celery = with_models(
            settings,
            tiny_vlm_spec,
            tiny_grounding_spec,
            mode="celery",
            broker_url=redis_server.url,
        )
        with (
            LiveServer(celery) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            image_id = upload_scene(client)
            response = client.post("/v1/caption", json={"image_id": image_id})
            assert_problem(response, 503, "no vlm worker is running")
            assert response.headers["retry-after"]
            assert client.get("/readyz").json()["tools"]["caption"].startswith("no vlm worker")
