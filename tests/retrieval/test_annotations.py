"""Writing what the models saw back into the index: caption vectors, labels, counts."""

from __future__ import annotations

import numpy as np
import pytest
from retrieval.ingest_images import jpeg

from mmrag.errors import NotFound
from mmrag.retrieval.annotations import AnnotationWriter, count_key
from mmrag.retrieval.filters import SearchFilter
from mmrag.retrieval.items import IngestItem
from mmrag.retrieval.search import SearchQuery, SearchTarget
from mmrag.services import Services


def add(services: Services, seed: int, captions: tuple[str, ...] = ()) -> str:
    report = services.ingest([IngestItem.upload(jpeg(seed=seed), f"{seed}.jpg", captions)])
    image = report.results[0].image
    assert image is not None
    return image.image_id


def writer(services: Services) -> AnnotationWriter:
    return AnnotationWriter(services.store, services.embedder)


def test_a_caption_becomes_the_text_vector_and_is_searchable(services: Services) -> None:
    image_id = add(services, 1)
    assert services.store.get_vector(image_id, "text") is None
    writer(services).apply_caption(image_id, "a forklift in a warehouse", "fixture:vlm")
    payload = services.image(image_id)
    assert payload["model_caption"] == "a forklift in a warehouse"
    assert payload["caption"] == "a forklift in a warehouse"
    assert payload["caption_model"] == "fixture:vlm"
    stored = services.store.get_vector(image_id, "text")
    assert stored is not None
    expected = services.embedder().embed_texts(["a forklift in a warehouse"])[0]
    assert np.allclose(stored, expected, atol=1e-5)
    found = services.search.search(SearchQuery(text="forklift", target=SearchTarget.HYBRID))
    assert found.hits[0].image_id == image_id


def test_a_user_caption_stays_first_and_joins_the_mean(services: Services) -> None:
    image_id = add(services, 2, ("my own words",))
    writer(services).apply_caption(image_id, "model words", "m")
    payload = services.image(image_id)
    assert payload["caption"] == "my own words"
    assert payload["captions"] == ["my own words"]
    vectors = services.embedder().embed_texts(["my own words", "model words"])
    mean = vectors.mean(axis=0)
    stored = services.store.get_vector(image_id, "text")
    assert stored is not None
    assert np.allclose(stored, mean / np.linalg.norm(mean), atol=1e-5)


def test_boxes_become_labels_and_counts_including_zero(services: Services) -> None:
    image_id = add(services, 3)
    boxes = [
        {"label": "Person", "score": 0.9, "box": [0, 0, 5, 5]},
        {"label": "person", "score": 0.8, "box": [5, 5, 9, 9]},
        {"label": "forklift", "score": 0.7, "box": [1, 1, 8, 8]},
    ]
    writer(services).apply_boxes(image_id, ["person", "forklift", "red  car"], boxes, "g")
    payload = services.image(image_id)
    assert payload["labels"] == ["forklift", "person"]
    assert payload["counts"] == {"person": 2, "forklift": 1, "red_car": 0}
    assert [box["label"] for box in payload["boxes"]] == ["person", "person", "forklift"]
    # Asking again about one label replaces its boxes and count, and keeps the others.
    writer(services).apply_boxes(image_id, ["person"], [], "g")
    payload = services.image(image_id)
    assert payload["counts"] == {"person": 0, "forklift": 1, "red_car": 0}
    assert [box["label"] for box in payload["boxes"]] == ["forklift"]
    assert payload["labels"] == ["forklift"]  # no person any more: a labels filter agrees


def test_counts_filter_finds_at_least_two(services: Services) -> None:
    crowded, lonely = add(services, 4), add(services, 5)
    people = {"label": "person", "score": 0.9, "box": [0, 0, 1, 1]}
    writer(services).apply_boxes(crowded, ["person"], [people, people, people], "g")
    writer(services).apply_boxes(lonely, ["person"], [people], "g")
    wanted = SearchFilter.model_validate({"counts": {"person": {"gte": 2}}})
    found = services.search.search(SearchQuery(text="x", filter=wanted.to_store_filter()))
    assert [hit.image_id for hit in found.hits] == [crowded]


def test_annotating_a_deleted_image_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound):
        writer(services).apply_caption("0" * 32, "x", "m")


@pytest.mark.parametrize(
    ("label", "key"),
    [("Person", "person"), ("the blue  triangle", "the_blue_triangle"), ("!!", "unlabelled")],
)
def test_count_keys(label: str, key: str) -> None:
    assert count_key(label) == key


def test_long_labels_that_share_a_prefix_count_apart() -> None:
    prefix = "a very long label " * 5
    first, second = count_key(prefix + "cat"), count_key(prefix + "dog")
    assert first != second
    assert len(first) == len(second) == 64
    assert first.startswith("a_very_long_label_a_very")
