"""Region search over real HTTP: grounding indexes the crop, ``target: "region"`` finds it.

With the fixture models trained on the shapes world: an image holding several small shapes
is found by the one a query names, and the result says where that shape is.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from api.live_server import LiveServer
from api.test_api_search import gallery_api  # noqa: F401 (the fixture)

from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir, fixture_directory
from mmrag.models.fixtures.multi_object import MultiObjectImage, sparse

PROBLEM = "application/problem+json"


def png(item: MultiObjectImage) -> bytes:
    out = io.BytesIO()
    item.image.save(out, "PNG")
    return out.getvalue()


def iou(a: list[float], b: tuple[int, int, int, int]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_region_search_before_any_region_says_so(
    gallery_api: tuple[httpx.Client, dict[str, str]],  # noqa: F811 (the fixture)
) -> None:
    client, _ = gallery_api
    response = client.post("/v1/search", json={"text": "a red circle", "target": "region"})
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "no image has region vectors yet" in response.json()["detail"]


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, list[str]]]:
    fixture_directory("shapes-clip")
    fixture_directory("shapes-grounding")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("regions") / "data",
        models={
            "embedder": "fixture:shapes-clip",
            "grounding": "fixture:shapes-grounding",
            "device": "cpu",
            "cache_dir": default_cache_dir(),
        },
        samples={"enabled": False},
        store={"backend": request.param, "url": ":memory:" if request.param == "qdrant" else None},
    )
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client, []


@pytest.mark.slow
def test_grounding_indexes_the_crop_and_region_search_finds_and_places_it(
    world: tuple[httpx.Client, list[str]],
) -> None:
    client, _ = world
    gallery = sparse(12, block=7)
    files = [("files", (f"{n}.png", png(item), "image/png")) for n, item in enumerate(gallery)]
    response = client.post("/v1/images", files=files)
    assert response.status_code == 201, response.text
    ids = [item["id"] for item in response.json()["items"]]
    by_id = dict(zip(ids, gallery, strict=True))
    target_id, target = ids[0], gallery[0]
    phrase = target.objects[0].phrase

    grounded = client.post("/v1/ground", json={"image_id": target_id, "phrases": [phrase]})
    assert grounded.status_code == 200, grounded.text
    stored = client.get(f"/v1/images/{target_id}").json()
    assert stored["labels"] == [phrase]
    assert [region["label"] for region in stored["regions"]] == [phrase]

    response = client.post(
        "/v1/search", json={"text": f"a {phrase}", "target": "region", "limit": 5}
    )
    assert response.status_code == 200, response.text
    found = response.json()["results"]
    # Only the grounded image has regions yet: it is the one hit, placed on the shape.
    assert [hit["id"] for hit in found] == [target_id]
    region = found[0]["region"]
    assert region["label"] == phrase
    truth = by_id[target_id].find(phrase)
    assert truth is not None
    assert iou(region["box"], truth.box) >= 0.5
    assert 0 < region["match"] <= 1

    # Hybrid fuses the region arm in: the grounded image comes first and says where.
    fused = client.post(
        "/v1/search", json={"text": f"a {phrase}", "target": "hybrid", "limit": 5}
    ).json()["results"]
    assert fused[0]["id"] == target_id
    assert fused[0]["region"]["label"] == phrase
    assert all(hit["region"] is None for hit in fused[1:])
