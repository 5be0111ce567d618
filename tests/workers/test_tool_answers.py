"""The tools give real answers: the fixture models trained on the shapes world, run through
both modes (embedded, and a real Redis with a real ``mmrag worker`` subprocess) and over
HTTP, on held-out scenes.

The first run on a machine trains the fixtures into the fixture cache (minutes); later runs
reuse them. Each assertion allows a miss or two where the held-out accuracy (see the fixture
tests) is below one: these tests check the service path end to end, the fixture tests the
models' accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api.live_server import LiveServer
from workers.shapes_scenes import held_out, index_scenes, png_of
from workers.worker_settings import with_models, worker_environment

from mmrag.config import Settings
from mmrag.models.fixtures import default_cache_dir, fixture_directory
from mmrag.models.fixtures.evaluate_grounding import box_iou
from mmrag.models.fixtures.evaluate_vlm import score_caption
from mmrag.models.fixtures.shapes import ShapeScene
from mmrag.retrieval.search import SearchQuery, SearchTarget
from mmrag.services import Services
from mmrag.testing.celery_worker import CeleryWorker
from mmrag.workers.client import ImageRequest
from mmrag.workers.protocol import raise_if_error

pytestmark = pytest.mark.slow

VLM = "fixture:shapes-vlm"
GROUNDING = "fixture:shapes-grounding"


@pytest.fixture(scope="module")
def trained_fixtures() -> None:
    """Build both fixtures before any worker starts, so no worker trains on its first task."""
    for name in ("shapes-vlm", "shapes-grounding"):
        fixture_directory(name, default_cache_dir())


@pytest.fixture(params=["embedded", "celery"])
def services(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path, trained_fixtures: None
) -> Iterator[Services]:
    if request.param == "embedded":
        yield from _opened(with_models(settings, VLM, GROUNDING))
        return
    redis = request.getfixturevalue("redis_server")
    configured = with_models(
        settings, VLM, GROUNDING, mode="celery", broker_url=redis.url, heartbeat_s=0.5
    )
    worker = CeleryWorker(
        worker_environment(configured), configured.workers.broker_url, tmp_path / "worker.log"
    )
    with worker:
        yield from _opened(configured)


def _opened(settings: Settings) -> Iterator[Services]:
    opened = Services.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def with_one(kind: str) -> list[ShapeScene]:
    return held_out(10, lambda scene: len(scene.find(kind=kind)) == 1)  # type: ignore[arg-type]


def test_captions_name_the_shapes_and_colours_and_become_searchable(services: Services) -> None:
    scenes = held_out(10)
    ids = index_scenes(services, scenes)
    results = services.tools.run("caption", [ImageRequest(image_id) for image_id in ids])
    captions = [str(raise_if_error(result)["caption"]) for result in results]
    named = [score_caption(text, scene)[0] for text, scene in zip(captions, scenes, strict=True)]
    assert sum(named) >= 9, list(zip(captions, [s.shapes for s in scenes], strict=True))
    # The caption went into the index: searching the captions by its words finds the image.
    first = named.index(True)
    found = services.search.search(
        SearchQuery(text=captions[first], target=SearchTarget.CAPTION, limit=3)
    )
    assert ids[first] in [hit.image_id for hit in found.hits]


def test_what_colour_is_the_square(services: Services) -> None:
    scenes = with_one("square")
    ids = index_scenes(services, scenes)
    requests = [ImageRequest(image_id, question="What colour is the square?") for image_id in ids]
    answers = [str(raise_if_error(r)["answer"]) for r in services.tools.run("vqa", requests)]
    truth = [scene.find(kind="square")[0].colour for scene in scenes]
    assert sum(a == t for a, t in zip(answers, truth, strict=True)) >= 9, (answers, truth)


def test_the_blue_triangle_is_grounded(services: Services) -> None:
    scenes = held_out(10, lambda scene: scene.has("blue", "triangle"))
    ids = index_scenes(services, scenes)
    hits = 0
    for image_id, scene in zip(ids, scenes, strict=True):
        found = services.tools.ground(image_id, ["the blue triangle"])
        best = max(found.boxes, key=lambda box: box.score, default=None)
        truth = scene.find("blue", "triangle")[0].box
        hits += best is not None and box_iou(best.box, truth) >= 0.5
        assert services.image(image_id)["counts"]["the_blue_triangle"] == len(found.boxes)
    assert hits >= 9


def test_over_http_an_upload_is_answered(settings: Settings, trained_fixtures: None) -> None:
    [scene] = with_one("circle")[:1]
    configured = with_models(settings, VLM, GROUNDING)
    with LiveServer(configured) as server, httpx.Client(base_url=server.url, timeout=300) as api:
        files = {"file": ("scene.png", png_of(scene), "image/png")}
        response = api.post("/v1/vqa", files=files, data={"question": "what color is the circle?"})
        assert response.status_code == 200, response.text
        assert response.json()["answer"] == scene.find(kind="circle")[0].colour
        response = api.post("/v1/caption", json={"image_id": response.json()["image_id"]})
        assert response.status_code == 200, response.text
        assert score_caption(response.json()["caption"], scene)[0], response.json()
