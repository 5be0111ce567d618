"""OWLv2 and OWL-ViT: tiny checkpoints end to end, boxes back through each family's layout."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from models.grounding.box_checks import MAX_BOXES, TINY, assert_boxes, scene_images
from models.grounding.tiny_detectors import OWL_GRID

from mmrag.errors import InvalidInput
from mmrag.models.grounding.owl import GROUND_FLOOR, OwlAdapter
from mmrag.models.registry import create_vision_model
from mmrag.models.vision import Box, ToolNotServed, VisionModel

PHRASES = [["the blue triangle", "a red circle"], ["square"]]
VOCABULARY = ["circle", "square", "triangle"]

Interval = tuple[float, float]


def grid_cells(side: float, limit: int) -> list[Interval]:
    """The tiny OWL's cells along one side of the model's input, in original pixels: centres at
    k / grid (k = 1..grid), a grid step wide, the input's side covering ``side`` pixels of the
    original, clipped to the image's ``limit``; cells wholly outside it are gone."""
    step = side / OWL_GRID
    cells = [(step * (k - 0.5), min(step * (k + 0.5), limit)) for k in range(1, OWL_GRID + 1)]
    return [(start, end) for start, end in cells if start < limit]


def on_grid(box: Box, columns: list[Interval], rows: list[Interval]) -> bool:
    x1, y1, x2, y2 = box.box
    near = 0.1  # the box bias's sigmoid is within 1e-4 of the cell
    return any(abs(x1 - a) < near and abs(x2 - b) < near for a, b in columns) and any(
        abs(y1 - a) < near and abs(y2 - b) < near for a, b in rows
    )


@pytest.mark.parametrize("family", ["owlv2", "owlvit"])
def test_ground_and_detect_give_boxes_in_each_images_own_pixels(
    family: str, tiny_detector: Callable[[str], VisionModel]
) -> None:
    model = tiny_detector(family)
    assert isinstance(model, OwlAdapter)
    images = scene_images()
    grounded = model.ground(images, PHRASES)
    detected = model.detect(images, VOCABULARY)
    assert_boxes(grounded, images, PHRASES, MAX_BOXES)
    assert_boxes(detected, images, [VOCABULARY] * len(images), MAX_BOXES)
    assert all(grounded)
    assert all(detected)
    for image, boxes in [*zip(images, grounded, strict=True), *zip(images, detected, strict=True)]:
        width, height = image.size
        if family == "owlv2":
            # Padded to a square of side max(width, height) before resizing.
            side = max(width, height)
            columns, rows = grid_cells(side, width), grid_cells(side, height)
        else:
            # Resized (squashed) without padding.
            columns, rows = grid_cells(width, width), grid_cells(height, height)
        assert all(on_grid(box, columns, rows) for box in boxes), (image.size, boxes)


def test_owlv2_boxes_are_not_scaled_by_the_unpadded_size(
    tiny_detector: Callable[[str], VisionModel],
) -> None:
    # The wide image's rows of cells are 50 px apart (200 / 4), not 32.5 (130 / 4).
    model = tiny_detector("owlv2")
    (wide, _) = scene_images()
    (boxes,) = model.ground([wide], [["square"]])
    assert {round(box.box[1]) for box in boxes} <= {25, 75, 125}


def canned_owl(logits: list[list[float]], boxes: list[list[float]]) -> Callable[[Any], Any]:
    """A forward pass that answers one image with these patch logits (``patches x queries``)
    and boxes (``patches x 4``, centre and size in [0, 1] of the model's input)."""

    def forward(inputs: Any) -> Any:
        return SimpleNamespace(
            logits=torch.tensor([logits]), pred_boxes=torch.tensor([boxes], dtype=torch.float32)
        )

    return forward


def probability_logit(probability: float) -> float:
    return float(torch.logit(torch.tensor(probability)))


def test_a_phrase_nothing_cleared_gets_its_best_box_above_the_floor(
    tiny_detector_dir: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = create_vision_model(
        f"local:{tiny_detector_dir('owlv2')}", dataclasses.replace(TINY, box_threshold=0.3)
    )
    below, above = GROUND_FLOOR / 2, (GROUND_FLOOR + 0.3) / 2
    logits = [
        [probability_logit(0.9), probability_logit(above), probability_logit(below)],
        [probability_logit(0.8), probability_logit(0.01), probability_logit(below / 2)],
        [probability_logit(0.01), probability_logit(0.02), probability_logit(0.01)],
    ]
    boxes = [[0.25, 0.25, 0.5, 0.5], [0.75, 0.25, 0.5, 0.5], [0.5, 0.75, 0.5, 0.5]]
    monkeypatch.setattr(strict, "_forward", canned_owl(logits, boxes))
    (wide, _) = scene_images()  # 200 x 130: a 200 px padded square
    (found,) = strict.ground([wide], [["cleared", "floor", "nothing"]])
    assert [(box.label, round(box.score, 3), box.box) for box in found] == [
        ("cleared", 0.9, (0.0, 0.0, 100.0, 100.0)),
        ("floor", round(above, 3), (0.0, 0.0, 100.0, 100.0)),
        ("cleared", 0.8, (100.0, 0.0, 200.0, 100.0)),
    ]


def test_requests_are_checked(tiny_detector: Callable[[str], VisionModel]) -> None:
    model = tiny_detector("owlv2")
    images = scene_images()
    assert model.ground(images, [[], []]) == [[], []]
    assert model.ground(images, [[], ["square"]])[0] == []
    with pytest.raises(InvalidInput):
        model.ground(images, [["a circle"], [""]])
    with pytest.raises(InvalidInput):
        model.ground(images, ["a circle", "a square"])
    with pytest.raises(ToolNotServed):
        model.caption(images)
    with pytest.raises(ToolNotServed):
        model.ocr(images)
