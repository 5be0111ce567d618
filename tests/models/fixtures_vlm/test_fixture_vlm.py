"""The trained ``shapes-vlm`` fixture: loads through the registry and gives real answers about
held-out scenes.

The first run on a machine trains the model (minutes on 2 cores) into the fixture cache
(``$MMRAG_FIXTURE_CACHE``, else ``~/.cache/mmrag/fixtures``); later runs reuse it.
"""

from __future__ import annotations

import pytest

from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.evaluate_vlm import evaluate_vlm, score_caption
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, ShapeScene, generate_world
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionModel, VisionOptions
from mmrag.models.vlm.llava import LlavaAdapter

pytestmark = pytest.mark.slow

HELD_OUT_SCENES = 200


@pytest.fixture(scope="session")
def shapes_vlm() -> VisionModel:
    # A persistent cache (not tmp_path): training takes minutes, so it happens once per
    # machine and recipe, not once per test session.
    options = VisionOptions(device="cpu", cache_dir=default_cache_dir())
    model = create_vision_model("fixture:shapes-vlm", options)
    model.load()
    return model


@pytest.fixture(scope="module")
def scenes() -> list[ShapeScene]:
    return generate_world(HELD_OUT_SCENES, seed=HELD_OUT_SEEDS.start)


def test_fixture_is_a_plain_llava(shapes_vlm: VisionModel) -> None:
    assert isinstance(shapes_vlm, LlavaAdapter)
    assert shapes_vlm.serves("caption")
    assert shapes_vlm.serves("vqa")
    assert not shapes_vlm.processor.chat_template


def test_captions_name_every_shape_and_colour(
    shapes_vlm: VisionModel, scenes: list[ShapeScene]
) -> None:
    sample = scenes[:40]
    captions = shapes_vlm.caption([scene.image for scene in sample])
    named = [score_caption(text, scene)[0] for text, scene in zip(captions, sample, strict=True)]
    assert sum(named) >= 0.9 * len(sample), list(zip(captions, sample, strict=True))[:5]
    first, scene = captions[0], sample[0]
    if named[0]:
        for shape in scene.shapes:
            assert f"{shape.colour} {shape.kind}" in first


def test_what_colour_is_the_square(shapes_vlm: VisionModel, scenes: list[ShapeScene]) -> None:
    with_one_square = [scene for scene in scenes if len(scene.find(kind="square")) == 1][:30]
    answers = shapes_vlm.answer(
        [scene.image for scene in with_one_square],
        ["What colour is the square?"] * len(with_one_square),
    )
    right = [
        answer.text == scene.find(kind="square")[0].colour
        for answer, scene in zip(answers, with_one_square, strict=True)
    ]
    assert sum(right) >= 0.9 * len(right), [a.text for a in answers]
    assert all(answer.score is not None and 0.0 < answer.score <= 1.0 for answer in answers)


def test_how_many_shapes(shapes_vlm: VisionModel, scenes: list[ShapeScene]) -> None:
    sample = scenes[:40]
    answers = shapes_vlm.answer(
        [scene.image for scene in sample], ["How many shapes are there?"] * len(sample)
    )
    right = [a.text == str(len(s.shapes)) for a, s in zip(answers, sample, strict=True)]
    assert sum(right) >= 0.9 * len(right), [a.text for a in answers]


def test_held_out_accuracy_meets_the_targets(
    shapes_vlm: VisionModel, scenes: list[ShapeScene]
) -> None:
    # Measured here: captions 0.96, VQA 0.91 (colour 0.92, shape 1.0, count 1.0, exists 0.84:
    # "is there a yellow square?" beside a yellow circle is its weak spot). The bounds leave
    # room for another machine's float reductions, which train slightly different weights.
    report = evaluate_vlm(shapes_vlm, scenes)
    summary = report.as_dict()
    assert report.caption_accuracy >= 0.9, summary
    assert report.vqa_accuracy >= 0.85, summary
    for task in ("colour", "shape", "count", "exists"):
        assert report.accuracy(task) >= 0.75, summary
