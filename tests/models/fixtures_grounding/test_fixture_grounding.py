"""The trained ``shapes-grounding`` fixture, served by the OWLv2 adapter through the registry:
real boxes for real phrases on held-out scenes, square or not.

The first run on a machine trains the model (a few minutes on 2 cores) into the fixture
cache (``$MMRAG_FIXTURE_CACHE``, else ``~/.cache/mmrag/fixtures``); later runs reuse it.
"""

from __future__ import annotations

import pytest

from mmrag.models.fixtures import default_cache_dir
from mmrag.models.fixtures.evaluate_grounding import (
    box_iou,
    detection_report,
    grounding_report,
)
from mmrag.models.fixtures.grounding_data import Example, on_canvas, scene_example
from mmrag.models.fixtures.shapes import HELD_OUT_SEEDS, ShapeScene, generate_scene, generate_world
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import VisionModel, VisionOptions

pytestmark = pytest.mark.slow

PHRASE = "the blue triangle"
HELD_OUT_SCENES = 300


@pytest.fixture(scope="session")
def shapes_grounding() -> VisionModel:
    # A persistent cache (not tmp_path): training takes minutes, so it happens once per
    # machine and recipe, not once per test session.
    options = VisionOptions(device="cpu", cache_dir=default_cache_dir())
    model = create_vision_model("fixture:shapes-grounding", options)
    model.load()
    return model


@pytest.fixture(scope="module")
def blue_triangle_scenes() -> list[ShapeScene]:
    """The first 30 held-out scenes that hold a blue triangle."""
    scenes = (generate_scene(seed) for seed in HELD_OUT_SEEDS)
    found: list[ShapeScene] = []
    while len(found) < 30:
        scene = next(scenes)
        if scene.has("blue", "triangle"):
            found.append(scene)
    return found


def _blue_triangle_ious(model: VisionModel, examples: list[Example]) -> list[float]:
    """IoU of each example's best "the blue triangle" box with the truth; 0 for no box."""
    answers = model.ground([example.image for example in examples], [[PHRASE]] * len(examples))
    ious = []
    for example, boxes in zip(examples, answers, strict=True):
        assert all(box.label == PHRASE for box in boxes)
        [truth] = [
            box
            for shape, box in zip(example.shapes, example.boxes, strict=True)
            if shape.phrase == "blue triangle"
        ]
        best = max(boxes, key=lambda box: box.score, default=None)
        if best is None:
            ious.append(0.0)
            continue
        width, height = example.image.size
        x1, y1, x2, y2 = best.box
        assert 0 <= x1 < x2 <= width
        assert 0 <= y1 < y2 <= height
        ious.append(box_iou(best.box, truth))
    return ious


def test_fixture_is_an_owlv2_served_by_the_owl_adapter(shapes_grounding: VisionModel) -> None:
    assert type(shapes_grounding).__name__ == "OwlAdapter"
    assert shapes_grounding.serves("ground")
    assert shapes_grounding.serves("detect")


def test_grounds_the_blue_triangle_on_held_out_scenes(
    shapes_grounding: VisionModel, blue_triangle_scenes: list[ShapeScene]
) -> None:
    ious = _blue_triangle_ious(shapes_grounding, [scene_example(s) for s in blue_triangle_scenes])
    hits = sum(iou >= 0.5 for iou in ious)
    assert hits >= 0.9 * len(ious), ious


@pytest.mark.parametrize(("width", "height", "left", "top"), [(96, 64, 32, 0), (64, 96, 0, 32)])
def test_grounds_the_blue_triangle_on_non_square_images(
    shapes_grounding: VisionModel,
    blue_triangle_scenes: list[ShapeScene],
    width: int,
    height: int,
    left: int,
    top: int,
) -> None:
    """The scene pasted at the far end of a canvas half as long again: OWLv2 pads to a
    square, and the adapter must map boxes back from it, shifted with the scene. Boxes
    scaled by each side instead of the longer one would be a third off along the shorter
    side and miss nearly all; the shapes are also smaller to the model here (two thirds),
    hence a lower bar than on the square scenes."""
    examples = [on_canvas(scene, width, height, left, top) for scene in blue_triangle_scenes]
    ious = _blue_triangle_ious(shapes_grounding, examples)
    hits = sum(iou >= 0.5 for iou in ious)
    assert hits >= 0.8 * len(ious), ious


def test_held_out_grounding_and_detection(shapes_grounding: VisionModel) -> None:
    examples = [scene_example(s) for s in generate_world(HELD_OUT_SCENES, HELD_OUT_SEEDS.start)]
    grounding = grounding_report(shapes_grounding, examples)
    assert grounding.hit_rate >= 0.9, grounding.as_dict()
    detection = detection_report(shapes_grounding, examples)
    assert detection.recall >= 0.8, detection.as_dict()
    assert detection.precision >= 0.6, detection.as_dict()
