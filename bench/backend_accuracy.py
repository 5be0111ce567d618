"""Retrieval accuracy of an embedder on held-out scenes of the shapes world (fixture CLIP).

- text -> image: each scene's fourth caption (shapes left to right, with their places) is a
  query over all scenes; the relevant scenes are those it is true of (``describes``).
- image -> image: one-shape scenes, each a query over the others; relevant are those with a
  shape of the same colour and kind.

Top-1 is the share of queries whose best match is relevant; recall@10 is the share of the
relevant scenes in the top 10, out of at most 10. Hundreds of queries each, so a point is a
few queries, fine enough for "int8 may not lose more than 1 point".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmrag.models.fixtures.shapes import (
    HELD_OUT_SEEDS,
    ShapeScene,
    describes,
    generate_scene,
    generate_world,
    scene_captions,
)

# Apart from the seeds the fixture's own evaluation, the tests and the sample gallery use.
SEED = HELD_OUT_SEEDS.start + 720_000_000


class Embedder(Protocol):
    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]: ...

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def scenes(count: int) -> tuple[list[ShapeScene], list[ShapeScene]]:
    """(multi-shape scenes for text queries, one-shape scenes for image queries)."""
    single = [generate_scene(SEED + 10**6 + index, max_shapes=1) for index in range(count)]
    return generate_world(count, seed=SEED), single


def _scores(
    similarity: npt.NDArray[np.float32], relevant: npt.NDArray[np.bool_]
) -> dict[str, float]:
    order = np.argsort(-similarity, axis=1, kind="stable")
    ranked = np.take_along_axis(relevant, order, axis=1)
    top1 = float(ranked[:, 0].mean())
    found = ranked[:, :10].sum(axis=1)
    possible = np.minimum(relevant.sum(axis=1), 10)
    recall = float(np.mean(found / np.maximum(possible, 1)))
    return {"top1": round(100 * top1, 2), "recall_at_10": round(100 * recall, 2)}


def accuracy(
    embedder: Embedder, world: Sequence[ShapeScene], single: Sequence[ShapeScene]
) -> dict[str, dict[str, float]]:
    captions = [scene_captions(scene)[3] for scene in world]
    images = embedder.embed_images([scene.image for scene in world])
    texts = embedder.embed_texts([caption.text for caption in captions])
    relevant = np.array([[describes(c, scene) for scene in world] for c in captions])
    text_to_image = _scores(texts @ images.T, relevant)

    vectors = embedder.embed_images([scene.image for scene in single])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)  # a query is not its own answer
    phrases = [scene.shapes[0].phrase for scene in single]
    same = np.array([[a == b for b in phrases] for a in phrases])
    np.fill_diagonal(same, False)
    image_to_image = _scores(similarity, same)
    return {"text_to_image": text_to_image, "image_to_image": image_to_image}
