"""From score matrices to the boxes callers get: thresholds, labels, order, NMS, caps."""

from __future__ import annotations

import pytest
import torch

from mmrag.models.grounding.selection import (
    detect_boxes,
    ground_boxes,
    rank_interleaved,
    suppress_overlaps,
)
from mmrag.models.vision import Box

BOXES = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],
        [1.0, 1.0, 10.0, 10.0],  # IoU 0.81 with the first
        [20.0, 20.0, 30.0, 30.0],
        [40.0, 40.0, 40.0, 50.0],  # no width: clipped away
    ]
)


def described(boxes: list[Box]) -> list[tuple[str, float, tuple[float, ...]]]:
    return [(box.label, round(box.score, 4), box.box) for box in boxes]


def test_each_phrase_gets_its_own_boxes_best_of_each_first() -> None:
    scores = torch.tensor(
        [
            [0.9, 0.1],
            [0.8, 0.6],  # overlaps the first box: suppressed for "a", the best for "b"
            [0.5, 0.4],
            [0.99, 0.99],  # no area
        ]
    )
    found = ground_boxes(BOXES, scores, ["a", "b"], threshold=0.3, max_boxes=10)
    assert described(found) == [
        ("a", 0.9, (0.0, 0.0, 10.0, 10.0)),
        ("b", 0.6, (1.0, 1.0, 10.0, 10.0)),
        ("a", 0.5, (20.0, 20.0, 30.0, 30.0)),
        ("b", 0.4, (20.0, 20.0, 30.0, 30.0)),
    ]


def test_the_cap_keeps_every_phrase_answered() -> None:
    scores = torch.tensor([[0.9, 0.35], [0.1, 0.1], [0.8, 0.1], [0.0, 0.0]])
    found = ground_boxes(BOXES, scores, ["a", "b"], threshold=0.3, max_boxes=2)
    assert [(box.label, round(box.score, 4)) for box in found] == [("a", 0.9), ("b", 0.35)]


@pytest.mark.parametrize(
    ("best", "floor", "expected"),
    [
        (0.2, 0.1, 1),  # under the threshold, over the floor: the best box alone
        (0.2, None, 0),  # no floor: nothing
        (0.05, 0.1, 0),  # under the floor: nothing
    ],
)
def test_the_floor_answers_a_phrase_nothing_cleared(
    best: float, floor: float | None, expected: int
) -> None:
    scores = torch.tensor([[best / 2], [0.0], [best], [1.0]])  # the best real box is the third
    found = ground_boxes(BOXES, scores, ["a"], threshold=0.3, max_boxes=5, floor=floor)
    assert len(found) == expected
    if found:
        assert found[0].box == (20.0, 20.0, 30.0, 30.0)


def test_detection_labels_each_box_with_its_best_label() -> None:
    scores = torch.tensor(
        [
            [0.9, 0.2],
            [0.85, 0.1],  # label 0 again, overlapping: suppressed
            [0.3, 0.7],
            [0.99, 0.0],  # no area
        ]
    )
    found = detect_boxes(BOXES, scores, ["circle", "square"], threshold=0.5, max_boxes=5)
    assert described(found) == [
        ("circle", 0.9, (0.0, 0.0, 10.0, 10.0)),
        ("square", 0.7, (20.0, 20.0, 30.0, 30.0)),
    ]
    capped = detect_boxes(BOXES, scores, ["circle", "square"], threshold=0.5, max_boxes=1)
    assert [box.label for box in capped] == ["circle"]


def test_detection_of_an_empty_vocabulary_is_empty() -> None:
    assert detect_boxes(BOXES, torch.zeros(4, 0), [], threshold=0.0, max_boxes=5) == []


def test_rank_interleaving_puts_every_phrase_best_first() -> None:
    a = [Box("a", 0.5, (0, 0, 1, 1)), Box("a", 0.9, (0, 0, 2, 2)), Box("a", 0.2, (0, 0, 3, 3))]
    b = [Box("b", 0.6, (0, 0, 4, 4))]
    merged = rank_interleaved([a, b], max_boxes=10)
    assert [(box.label, box.score) for box in merged] == [
        ("a", 0.9),
        ("b", 0.6),
        ("a", 0.5),
        ("a", 0.2),
    ]


def test_labelled_boxes_are_suppressed_per_label() -> None:
    boxes = [
        Box("circle", 0.5, (0, 0, 10, 10)),
        Box("circle", 0.7, (1, 1, 10, 10)),
        Box("square", 0.6, (0, 0, 10, 10)),
    ]
    kept = suppress_overlaps(boxes, max_boxes=5)
    assert [(box.label, box.score) for box in kept] == [("circle", 0.7), ("square", 0.6)]
    assert suppress_overlaps([], max_boxes=5) == []
