"""Captioning, VQA, grounding and detection with the fixture models, in both modes.

Embedded: the in-process runner. Celery: a real Redis and a real ``mmrag worker``
subprocess. The same assertions hold for both: one code path.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from workers.shapes_scenes import held_out, index_scenes, iou

from mmrag.config import Settings
from mmrag.errors import InvalidInput, NotFound, UnknownModel
from mmrag.models.fixtures.shapes import ShapeScene
from mmrag.retrieval.filters import SearchFilter
from mmrag.retrieval.search import SearchQuery, SearchTarget
from mmrag.services import Services
from mmrag.workers.client import ImageRequest
from mmrag.workers.protocol import raise_if_error

pytestmark = pytest.mark.slow

SCENES = 10


@pytest.fixture(params=["embedded", "celery"])
def services(request: pytest.FixtureRequest, shapes_settings: Settings) -> Iterator[Services]:
    settings = shapes_settings
    if request.param == "celery":
        request.getfixturevalue("celery_worker")
        settings = request.getfixturevalue("celery_settings")
    opened = Services.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def names_every_shape(caption: str, scene: ShapeScene) -> bool:
    words = caption.lower()
    return all(shape.colour in words and shape.kind in words for shape in scene.shapes)


def test_captions_name_the_shapes_and_colours(services: Services) -> None:
    scenes = held_out(SCENES)
    ids = index_scenes(services, scenes)
    results = services.tools.run("caption", [ImageRequest(image_id) for image_id in ids])
    captions = [raise_if_error(result)["caption"] for result in results]
    right = [names_every_shape(c, s) for c, s in zip(captions, scenes, strict=True)]
    assert sum(right) >= SCENES - 1, list(zip(captions, [s.shapes for s in scenes], strict=True))
    # Written back: the caption is in the payload and caption search finds the image by it.
    first = services.image(ids[0])
    assert first["model_caption"] == captions[0]
    assert first["caption"] == captions[0]  # no user caption, so the model's shows
    found = services.search.search(
        SearchQuery(text=captions[0], target=SearchTarget.CAPTION, limit=SCENES)
    )
    assert ids[0] in [hit.image_id for hit in found.hits]


def test_vqa_answers_the_colour_of_the_square(services: Services) -> None:
    scenes = held_out(SCENES, lambda scene: len(scene.find(kind="square")) == 1)
    ids = index_scenes(services, scenes)
    requests = [ImageRequest(i, question="what colour is the square?") for i in ids]
    answers = [raise_if_error(r)["answer"] for r in services.tools.run("vqa", requests)]
    expected = [scene.find(kind="square")[0].colour for scene in scenes]
    right = [e in a.lower() for a, e in zip(answers, expected, strict=True)]
    assert sum(right) >= SCENES - 1, list(zip(answers, expected, strict=True))
    single = services.tools.vqa(ids[0], "what colour is the square?")
    assert single.answer == answers[0]
    assert single.score is None or 0.0 <= single.score <= 1.0


def test_grounding_finds_the_blue_triangle(services: Services) -> None:
    scenes = held_out(SCENES, lambda scene: scene.has("blue", "triangle"))
    ids = index_scenes(services, scenes)
    overlaps = []
    for image_id, scene in zip(ids, scenes, strict=True):
        found = services.tools.ground(image_id, ["the blue triangle"])
        truth = scene.find(colour="blue", kind="triangle")[0].box
        best = max(found.boxes, key=lambda box: box.score, default=None)
        overlaps.append(iou(best.box, truth) if best else 0.0)
        assert all(box.label == "the blue triangle" for box in found.boxes)
    assert sum(value >= 0.5 for value in overlaps) >= SCENES - 1, overlaps
    # Written back: the phrase is a label and its count is filterable.
    payload = services.image(ids[0])
    assert "the blue triangle" in payload["labels"]
    assert payload["counts"]["the_blue_triangle"] >= 1


def test_detected_counts_filter_the_search(services: Services) -> None:
    scenes = held_out(6)
    ids = index_scenes(services, scenes)
    for image_id in ids:
        services.tools.detect(image_id, ["circle", "square", "triangle"])
    payloads = [services.image(image_id) for image_id in ids]
    with_two = {p["id"] for p in payloads if p["counts"]["circle"] + p["counts"]["square"] >= 0}
    assert with_two == set(ids)  # every asked label has a count, zero included
    wanted = SearchFilter.model_validate({"counts": {"triangle": {"gte": 1}}})
    found = services.search.search(
        SearchQuery(text="shapes", limit=20, filter=wanted.to_store_filter())
    )
    expected = {i for i, s in zip(ids, scenes, strict=True) if s.find(kind="triangle")}
    detected = {p["id"] for p in payloads if p["counts"]["triangle"] >= 1}
    assert {hit.image_id for hit in found.hits} == detected
    assert len(detected ^ expected) <= 1, (detected, expected)


def test_bad_requests_are_refused_and_the_worker_goes_on(services: Services) -> None:
    ids = index_scenes(services, held_out(1))
    with pytest.raises(NotFound):
        services.tools.caption("0" * 32)
    with pytest.raises(UnknownModel):
        services.tools.caption(ids[0], model="hf:someone/else")
    with pytest.raises(UnknownModel):
        services.tools.caption(ids[0], model="nonsense")
    with pytest.raises(InvalidInput, match="does not serve caption"):
        services.tools.caption(ids[0], model=services.settings.model_spec("grounding"))
    with pytest.raises(InvalidInput):
        services.tools.ground(ids[0], [])
    with pytest.raises(InvalidInput):
        services.tools.vqa(ids[0], "   ")
    # Nothing above poisoned anything: a good request still runs.
    assert services.tools.caption(ids[0]).caption
