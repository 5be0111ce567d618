"""The trained ``shapes-clip`` fixture: loads through the registry and retrieves real answers.

The first run on a machine trains the model (a few minutes on 2 cores) into the fixture
cache (``$MMRAG_FIXTURE_CACHE``, else ``~/.cache/mmrag/fixtures``); later runs reuse it.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.models.clip.embedder import ClipEmbedder, EmbedderOptions
from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.evaluate import text_to_image_recall
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, generate_scene, generate_world
from mmrag.models.registry import create_embedder

pytestmark = pytest.mark.slow

HELD_OUT_SCENES = 300


@pytest.fixture(scope="session")
def shapes_clip() -> ClipEmbedder:
    # A persistent cache (not tmp_path): training takes minutes, so it happens once per
    # machine and recipe, not once per test session.
    options = EmbedderOptions(device="cpu", batch_size=64, cache_dir=default_cache_dir())
    embedder = create_embedder("fixture:shapes-clip", options)
    embedder.load()
    return embedder


def test_fixture_loads_as_a_64_px_clip(shapes_clip: ClipEmbedder) -> None:
    assert shapes_clip.input_size == (64, 64)
    vectors = shapes_clip.embed_texts(["a red circle", "a blue square"])
    assert vectors.shape == (2, shapes_clip.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_recall_at_5_on_held_out_scenes(shapes_clip: ClipEmbedder) -> None:
    scenes = generate_world(HELD_OUT_SCENES, seed=HELD_OUT_SEEDS.start)
    report = text_to_image_recall(shapes_clip, scenes, k=5)
    assert len(report.queries) == 12
    assert report.recall_at_k >= 0.9, report.as_dict()
    # Success@5 is lenient (each shape is in about a sixth of the scenes); the share of true
    # hits in the top 5 is the stricter check. An untrained model scores about 0.4 here.
    assert report.precision_at_k >= 0.8, report.as_dict()


def test_single_shape_images_rank_their_own_phrase_first(shapes_clip: ClipEmbedder) -> None:
    """Zero-shot classification: one shape, twelve phrases, the right one wins."""
    scenes = [
        generate_scene(seed, max_shapes=1)
        for seed in range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + 120)
    ]
    labels = sorted({shape.phrase for scene in scenes for shape in scene.shapes})
    texts = shapes_clip.embed_texts([f"a {label}" for label in labels])
    images = shapes_clip.embed_images([scene.image for scene in scenes])
    predicted = [labels[int(index)] for index in np.argmax(images @ texts.T, axis=1)]
    accuracy = np.mean([p == s.shapes[0].phrase for p, s in zip(predicted, scenes, strict=True)])
    assert accuracy >= 0.9
