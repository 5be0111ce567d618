"""The grounding and detection metrics themselves, against models whose answers are known."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from PIL import Image

from mmrag.models.fixtures.evaluate_grounding import (
    box_iou,
    detection_report,
    grounding_report,
    held_out_report,
    non_square_examples,
)
from mmrag.models.fixtures.grounding_data import BoxXYXY, Example, scene_example
from mmrag.models.fixtures.shapes import generate_world
from mmrag.models.vision import Box


class OracleGrounder:
    """Answers from each example's ground truth, every box moved ``shift`` pixels right."""

    def __init__(self, examples: Sequence[Example], shift: float = 0.0) -> None:
        self._truth = {example.image.tobytes(): example for example in examples}
        self._shift = shift

    def _boxes(self, image: Image.Image) -> list[tuple[str, str, BoxXYXY]]:
        example = self._truth[image.tobytes()]
        return [
            (f"the {shape.phrase}", shape.kind, (x1 + self._shift, y1, x2 + self._shift, y2))
            for shape, (x1, y1, x2, y2) in zip(example.shapes, example.boxes, strict=True)
        ]

    def ground(
        self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
    ) -> list[list[Box]]:
        answers = []
        for image, asked in zip(images, phrases, strict=True):
            known = {phrase: box for phrase, _, box in self._boxes(image)}
            # A decoy with a lower score must not count: the best box is the answer.
            answers.append(
                [Box(p, 0.9, known[p]) for p in asked]
                + [Box(p, 0.1, (0.0, 0.0, 1.0, 1.0)) for p in asked]
            )
        return answers

    def detect(self, images: Sequence[Image.Image], vocabulary: Sequence[str]) -> list[list[Box]]:
        return [
            [Box(kind, 0.8, box) for _, kind, box in self._boxes(image) if kind in vocabulary]
            for image in images
        ]


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return [scene_example(scene) for scene in generate_world(40, seed=900)]


def test_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0


def test_a_perfect_model_scores_one(examples: list[Example]) -> None:
    grounding = grounding_report(OracleGrounder(examples), examples, batch_size=7)
    assert len(grounding.phrases) == sum(len(example.shapes) for example in examples)
    assert grounding.hit_rate == 1.0
    assert grounding.mean_iou == 1.0
    detection = detection_report(OracleGrounder(examples), examples, batch_size=7)
    assert detection.shapes == detection.detections == detection.true_positives
    assert detection.recall == detection.precision == 1.0


def test_boxes_off_by_more_than_half_score_zero(examples: list[Example]) -> None:
    # Shapes are at least 14 px wide: a 12 px shift leaves IoU below 0.5 (at most 2/12).
    shifted = OracleGrounder(examples, shift=12.0)
    grounding = grounding_report(shifted, examples)
    assert grounding.hit_rate == 0.0
    assert 0.0 < grounding.mean_iou < 0.5
    detection = detection_report(shifted, examples)
    assert detection.recall == detection.precision == 0.0


def test_missing_answers_and_wrong_labels_count_as_misses(examples: list[Example]) -> None:
    class Silent(OracleGrounder):
        def ground(
            self, images: Sequence[Image.Image], phrases: Sequence[Sequence[str]]
        ) -> list[list[Box]]:
            return [[] for _ in images]

        def detect(
            self, images: Sequence[Image.Image], vocabulary: Sequence[str]
        ) -> list[list[Box]]:
            # Every true box, twice, once with the wrong kind.
            wrong = {"circle": "square", "square": "triangle", "triangle": "circle"}
            return [
                [Box(kind, 0.8, box) for _, kind, box in self._boxes(image)]
                + [Box(wrong[kind], 0.9, box) for _, kind, box in self._boxes(image)]
                for image in images
            ]

    silent = Silent(examples)
    assert grounding_report(silent, examples).hit_rate == 0.0
    detection = detection_report(silent, examples)
    assert detection.recall == 1.0
    assert detection.precision == 0.5


def test_non_square_examples_stretch_one_side_and_keep_the_truth() -> None:
    scenes = generate_world(30, seed=900)
    examples = non_square_examples(scenes, seed=3)
    assert [example.shapes for example in examples] == [scene.shapes for scene in scenes]
    stretched = {"wide": 0, "tall": 0}
    for scene, example in zip(scenes, examples, strict=True):
        width, height = example.image.size
        assert min(width, height) == scene.size
        assert scene.size * 1.25 <= max(width, height) <= 2 * scene.size
        stretched["wide" if width > height else "tall"] += 1
    assert stretched["wide"] > 0
    assert stretched["tall"] > 0
    assert non_square_examples(scenes, seed=3)[0].boxes == examples[0].boxes
    # The oracle finds every shape at the shifted boxes, so the report itself is sound.
    known = non_square_examples(scenes) + [scene_example(scene) for scene in scenes]
    report = held_out_report(OracleGrounder(known), scenes)
    assert report["grounding_non_square"] == report["grounding"]
