"""The retrieval metric itself, against embedders whose answers are known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from mmrag.models.fixtures.evaluate import shape_queries, text_to_image_recall
from mmrag.models.fixtures.shapes import COLOURS, KINDS, ShapeScene, generate_world

PAIRS = [(colour, kind) for colour in COLOURS for kind in KINDS]


class OracleEmbedder:
    """Knows each scene's ground truth: images are their shape sets, texts the shape named.
    ``inverted`` ranks every scene that lacks the shape first."""

    def __init__(self, scenes: Sequence[ShapeScene], inverted: bool = False) -> None:
        self._scenes = {scene.image.tobytes(): scene for scene in scenes}
        self._sign = -1.0 if inverted else 1.0

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        rows = np.zeros((len(images), len(PAIRS)), np.float32)
        for row, image in zip(rows, images, strict=True):
            for shape in self._scenes[image.tobytes()].shapes:
                row[PAIRS.index((shape.colour, shape.kind))] = self._sign
        return rows

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = np.zeros((len(texts), len(PAIRS)), np.float32)
        for row, text in zip(rows, texts, strict=True):
            _, colour, kind = text.split()
            row[[f"{c} {k}" for c, k in PAIRS].index(f"{colour} {kind}")] = 1.0
        return rows


@pytest.fixture(scope="module")
def scenes() -> list[ShapeScene]:
    return generate_world(120, seed=500)


def test_queries_cover_the_shapes_that_occur(scenes: list[ShapeScene]) -> None:
    assert [text for text, _, _ in shape_queries(scenes)] == [f"a {c} {k}" for c, k in PAIRS]
    one = [scenes[0]]
    assert {(c, k) for _, c, k in shape_queries(one)} == {
        (shape.colour, shape.kind) for shape in scenes[0].shapes
    }


def test_a_perfect_embedder_scores_one(scenes: list[ShapeScene]) -> None:
    report = text_to_image_recall(OracleEmbedder(scenes), scenes, k=5)
    assert report.recall_at_k == 1.0
    assert report.precision_at_k == 1.0
    assert report.r_precision == 1.0
    assert all(result.relevant > 0 for result in report.queries)


def test_an_inverted_embedder_scores_zero(scenes: list[ShapeScene]) -> None:
    report = text_to_image_recall(OracleEmbedder(scenes, inverted=True), scenes, k=5)
    assert report.recall_at_k == 0.0
    assert report.precision_at_k == 0.0
    assert report.as_dict()["recall_at_k"] == 0.0


def test_bad_arguments_raise(scenes: list[ShapeScene]) -> None:
    with pytest.raises(ValueError, match="at least one scene"):
        text_to_image_recall(OracleEmbedder(scenes), [], k=5)
    with pytest.raises(ValueError, match="k must be"):
        text_to_image_recall(OracleEmbedder(scenes), scenes[:3], k=5)
