"""Captioning, VQA, grounding and detection through both modes.

The models are tiny random-weight checkpoints (a LLaVA and an OWLv2), so these tests assert
structure, order, write-back and failure handling, not what the models say.

Embedded: the in-process runner. Celery: a real Redis and a real ``mmrag worker``
subprocess. The same assertions hold for both: one code path.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from workers.shapes_scenes import held_out, index_scenes

from mmrag.config import Settings
from mmrag.errors import InvalidInput, NotFound, UnknownModel
from mmrag.retrieval.filters import SearchFilter
from mmrag.retrieval.search import SearchQuery
from mmrag.services import Services
from mmrag.workers.client import ImageRequest
from mmrag.workers.protocol import raise_if_error

pytestmark = pytest.mark.slow

SCENES = 10


@pytest.fixture(params=["embedded", "celery"])
def services(request: pytest.FixtureRequest, model_settings: Settings) -> Iterator[Services]:
    settings = model_settings
    if request.param == "celery":
        request.getfixturevalue("celery_worker")
        settings = request.getfixturevalue("celery_settings")
    opened = Services.open(settings)
    try:
        yield opened
    finally:
        opened.close()


def test_captions_come_back_in_order_and_are_written_back(services: Services) -> None:
    # The VLM here has random weights (structure only): what matters is one caption per
    # image, in order, each stored with its image.
    scenes = held_out(SCENES)
    ids = index_scenes(services, scenes)
    results = services.tools.run("caption", [ImageRequest(image_id) for image_id in ids])
    captions = [raise_if_error(result)["caption"] for result in results]
    assert all(isinstance(caption, str) for caption in captions)
    for image_id, caption in zip(ids, captions, strict=True):
        payload = services.image(image_id)
        assert payload["model_caption"] == caption
        assert payload["caption_model"] == services.settings.model_spec("vlm")
    single = services.tools.caption(ids[0])
    assert single.caption == captions[0]  # greedy decoding: the same image, the same words


def test_vqa_answers_one_scored_answer_per_question(services: Services) -> None:
    ids = index_scenes(services, held_out(4))
    requests = [ImageRequest(i, question="what colour is the square?") for i in ids]
    results = [raise_if_error(r) for r in services.tools.run("vqa", requests)]
    assert len(results) == len(ids)
    for result in results:
        assert isinstance(result["answer"], str)
        assert result["score"] is None or 0.0 <= result["score"] <= 1.0
    # An answer is about one question: nothing of it is written into the index.
    assert "model_caption" not in services.image(ids[0])


def inside(box: tuple[float, float, float, float], size: tuple[int, int]) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 <= x2 <= size[0] and 0 <= y1 <= y2 <= size[1]


def test_grounding_boxes_are_labelled_in_pixels_and_written_back(services: Services) -> None:
    scenes = held_out(4)
    ids = index_scenes(services, scenes)
    for image_id, scene in zip(ids, scenes, strict=True):
        found = services.tools.ground(image_id, ["the blue triangle", "a red circle"])
        assert found.boxes, "every phrase gets at least its best box above the floor"
        assert {box.label for box in found.boxes} <= {"the blue triangle", "a red circle"}
        assert all(inside(box.box, scene.image.size) and 0 <= box.score <= 1 for box in found.boxes)
        payload = services.image(image_id)
        counts = payload["counts"]
        assert set(counts) == {"the_blue_triangle", "a_red_circle"}
        assert counts["the_blue_triangle"] == sum(
            b.label == "the blue triangle" for b in found.boxes
        )
        assert len(payload["boxes"]) == len(found.boxes)


def test_detected_counts_filter_the_search(services: Services) -> None:
    ids = index_scenes(services, held_out(6))
    for image_id in ids:
        services.tools.detect(image_id, ["circle", "square", "triangle"])
    payloads = [services.image(image_id) for image_id in ids]
    assert all(set(p["counts"]) == {"circle", "square", "triangle"} for p in payloads)
    threshold = sorted(p["counts"]["triangle"] for p in payloads)[len(payloads) // 2]
    wanted = SearchFilter.model_validate({"counts": {"triangle": {"gte": threshold}}})
    found = services.search.search(
        SearchQuery(text="shapes", limit=20, filter=wanted.to_store_filter())
    )
    expected = {p["id"] for p in payloads if p["counts"]["triangle"] >= threshold}
    assert {hit.image_id for hit in found.hits} == expected


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
