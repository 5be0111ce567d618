"""Search answers, not just shapes: the fixture CLIP model trained on the synthetic world,
behind the real API, finds held-out images by what is in them."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from api.live_server import LiveServer

from mmrag.config import Settings
from mmrag.models.fixtures import fixture_directory
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, ShapeScene, generate_world

pytestmark = pytest.mark.slow

# Apart from the seeds the fixture's own evaluation and the sample gallery use.
SEED = HELD_OUT_SEEDS.start + 700_000_000


def png(scene: ShapeScene) -> bytes:
    out = io.BytesIO()
    scene.image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def world_api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, dict[str, ShapeScene]]]:
    # Train (or find cached) the fixture first: on a cold cache that takes minutes, longer
    # than a server is given to start.
    fixture_directory("shapes-clip")
    scenes = generate_world(80, seed=SEED)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("quality") / "data",
        models={"embedder": "fixture:shapes-clip", "device": "cpu"},
        samples={"enabled": False},
    )
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        files = [("files", (f"{scene.seed}.png", png(scene), "image/png")) for scene in scenes]
        by_id: dict[str, ShapeScene] = {}
        for start in range(0, len(files), 40):
            response = client.post("/v1/images", files=files[start : start + 40])
            assert response.status_code == 201, response.text
            for item, scene in zip(
                response.json()["items"], scenes[start : start + 40], strict=True
            ):
                by_id[item["id"]] = scene
        yield client, by_id


def test_text_to_image_finds_the_named_shape(
    world_api: tuple[httpx.Client, dict[str, ShapeScene]],
) -> None:
    client, by_id = world_api
    queries = sorted(
        {(shape.colour, shape.kind) for scene in by_id.values() for shape in scene.shapes}
    )
    hits = 0
    for colour, kind in queries:
        response = client.post("/v1/search", json={"text": f"a {colour} {kind}", "limit": 5})
        assert response.status_code == 200
        found = [by_id[result["id"]] for result in response.json()["results"]]
        hits += any(scene.has(colour, kind) for scene in found)

    assert len(queries) >= 10
    assert hits / len(queries) >= 0.9, (
        f"{hits}/{len(queries)} queries found their shape in the top 5"
    )


def test_the_best_match_has_the_shape(
    world_api: tuple[httpx.Client, dict[str, ShapeScene]],
) -> None:
    client, by_id = world_api
    top = client.post("/v1/search", json={"text": "a blue triangle", "limit": 1}).json()
    assert by_id[top["results"][0]["id"]].has("blue", "triangle")
