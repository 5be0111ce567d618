"""Box geometry: from each processor's frame back to original pixels, and NMS."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mmrag.models.grounding.boxes import (
    ResizeCrop,
    class_wise_nms,
    clip_to_image,
    cxcywh_to_xyxy,
    normalised_to_pixels,
    padded_square_to_pixels,
)


def rows(tensor: torch.Tensor) -> list[list[float]]:
    return [[round(value, 4) for value in row] for row in tensor.tolist()]


def test_centre_size_becomes_corners() -> None:
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.2, 0.2]])
    assert rows(cxcywh_to_xyxy(boxes)) == [[0.4, 0.3, 0.6, 0.7], [0.0, 0.8, 0.2, 1.0]]


def test_clipping_orders_corners_and_keeps_boxes_inside() -> None:
    boxes = torch.tensor([[50.0, 40.0, 10.0, 5.0], [-20.0, -5.0, 300.0, 90.0]])
    assert rows(clip_to_image(boxes, 200, 80)) == [[10, 5, 50, 40], [0, 0, 200, 80]]


def test_normalised_boxes_scale_by_width_and_height() -> None:
    boxes = torch.tensor([[0.25, 0.5, 0.75, 1.0]])
    assert rows(normalised_to_pixels(boxes, 200, 130)) == [[50, 65, 150, 130]]


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        # Wide: padded at the bottom to 200 x 200; the square's lower part is not the image.
        ((200, 130), [0.25, 0.1, 0.75, 0.6], [50, 20, 150, 120]),
        ((200, 130), [0.5, 0.5, 1.0, 1.0], [100, 100, 200, 130]),
        # Tall: padded on the right to 160 x 160.
        ((100, 160), [0.5, 0.5, 1.0, 1.0], [80, 80, 100, 160]),
        ((100, 160), [0.1, 0.25, 0.5, 0.75], [16, 40, 80, 120]),
    ],
)
def test_owlv2_boxes_are_fractions_of_the_padded_square(
    size: tuple[int, int], box: list[float], expected: list[float]
) -> None:
    width, height = size
    assert rows(padded_square_to_pixels(torch.tensor([box]), width, height)) == [expected]


def test_a_squashing_resize_maps_the_frame_onto_the_whole_image() -> None:
    processor = SimpleNamespace(
        do_resize=True, size={"height": 64, "width": 64}, do_center_crop=False, crop_size=None
    )
    layout = ResizeCrop.of(processor, 200, 130)
    assert (layout.resized, layout.crop) == ((64, 64), (64, 64))
    assert rows(layout.to_pixels(torch.tensor([[0.5, 0.5, 1.0, 1.0]]))) == [[100, 65, 200, 130]]


def test_shortest_edge_resize_and_centre_crop_are_undone() -> None:
    # 200 x 100 -> 64 x 32, then the middle 32 x 32 (columns 16-48 of the resized image).
    processor = SimpleNamespace(
        do_resize=True,
        size={"shortest_edge": 32},
        do_center_crop=True,
        crop_size={"height": 32, "width": 32},
    )
    layout = ResizeCrop.of(processor, 200, 100)
    assert (layout.resized, layout.crop) == ((64, 32), (32, 32))
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.75, 1.0]])
    # x: (16 + 32 * f) * 200 / 64; y: 32 * f * 100 / 32.
    assert rows(layout.to_pixels(boxes)) == [[50, 0, 150, 100], [100, 50, 125, 100]]


def test_a_crop_larger_than_the_image_was_padding() -> None:
    # 64 x 64 -> 32 x 32, padded to 40 x 40 (4 px each side): the frame starts at -4.
    processor = SimpleNamespace(
        do_resize=True,
        size={"height": 32, "width": 32},
        do_center_crop=True,
        crop_size={"height": 40, "width": 40},
    )
    layout = ResizeCrop.of(processor, 64, 64)
    boxes = torch.tensor([[0.1, 0.1, 0.9, 0.9], [0.2, 0.3, 0.5, 0.5]])
    assert rows(layout.to_pixels(boxes)) == [[0, 0, 64, 64], [8, 16, 32, 32]]


def test_class_wise_nms_suppresses_overlaps_within_a_label_only() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # label 0, 0.9
            [1.0, 1.0, 10.0, 10.0],  # label 0, 0.8: IoU 0.81 with the first, suppressed
            [1.0, 1.0, 10.0, 10.0],  # label 1, 0.7: same place, other label, kept
            [20.0, 20.0, 30.0, 30.0],  # label 0, 0.95: elsewhere, kept
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    labels = torch.tensor([0, 0, 1, 0])
    assert class_wise_nms(boxes, scores, labels).tolist() == [3, 0, 2]


def test_nms_keeps_a_box_overlapping_exactly_at_the_threshold() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0]])  # IoU 0.5
    scores = torch.tensor([0.9, 0.8])
    labels = torch.tensor([0, 0])
    assert class_wise_nms(boxes, scores, labels, 0.5).tolist() == [0, 1]
    assert class_wise_nms(boxes, scores, labels, 0.49).tolist() == [0]


def test_nms_of_nothing_is_nothing() -> None:
    empty = torch.zeros(0, 4)
    assert class_wise_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long)).numel() == 0
