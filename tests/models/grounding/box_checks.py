"""Checks every grounding adapter's output must pass, and the images they are run on."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import torch
from PIL import Image

from mmrag.models.fixtures.shapes import generate_scene
from mmrag.models.vision import Box, VisionOptions

MAX_BOXES = 3
# Every box counts (random weights score anything), few boxes, short generations.
TINY = VisionOptions(
    device="cpu", box_threshold=0.0, max_boxes=MAX_BOXES, max_new_tokens=4, cpu_threads=1
)
# Not square, and not the same shape: boxes must come back in each image's own pixels.
IMAGE_SIZES = ((200, 130), (96, 150))


def scene_images() -> list[Image.Image]:
    """Shapes scenes stretched to :data:`IMAGE_SIZES`."""
    return [generate_scene(seed).image.resize(size) for seed, size in enumerate(IMAGE_SIZES)]


def assert_boxes(
    found: Sequence[Sequence[Box]],
    images: Sequence[Image.Image],
    labels: Sequence[Sequence[str]],
    max_boxes: int,
) -> None:
    """One list per image, at most ``max_boxes`` long, of boxes inside that image (corners in
    order), scored in [0, 1], labelled only with that image's asked texts, best first."""
    assert len(found) == len(images)
    for boxes, image, allowed in zip(found, images, labels, strict=True):
        width, height = image.size
        assert len(boxes) <= max_boxes
        for box in boxes:
            x1, y1, x2, y2 = box.box
            assert 0.0 <= x1 <= x2 <= width, (box, image.size)
            assert 0.0 <= y1 <= y2 <= height, (box, image.size)
            assert 0.0 <= box.score <= 1.0
            assert box.label in allowed
        if boxes:
            assert boxes[0].score == max(box.score for box in boxes)


def canned_generation(
    context: torch.Tensor,
    answers: Sequence[Sequence[int]],
    probabilities: Sequence[float],
    vocabulary: int,
    pad: int,
) -> SimpleNamespace:
    """What ``generate`` returns for rows that wrote ``answers`` after ``context`` (the prompt,
    or a decoder's start token), row ``i`` giving each of its tokens ``probabilities[i]``:
    ``sequences`` (context, then answers padded to one length) and one logits tensor a step."""
    steps = max(len(answer) for answer in answers)
    padded = [list(answer) + [pad] * (steps - len(answer)) for answer in answers]
    generated = torch.tensor(padded, dtype=torch.long)
    logits = []
    for step in range(steps):
        probabilities_now = torch.full((len(answers), vocabulary), 0.0)
        for row, probability in enumerate(probabilities):
            rest = (1.0 - probability) / (vocabulary - 1)
            probabilities_now[row].fill_(rest)
            probabilities_now[row, generated[row, step]] = probability
        logits.append(probabilities_now.log())
    return SimpleNamespace(sequences=torch.cat([context, generated], dim=1), logits=logits)
