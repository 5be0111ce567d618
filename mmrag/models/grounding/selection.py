"""From a detector's scores to the boxes a caller gets: which boxes, which label, in what order.

Detectors score every candidate box (a query, a patch) against every text they were given:
a ``boxes x texts`` matrix of probabilities. Phrase grounding reads it by column (each phrase
its own boxes, a box may serve two phrases), detection by row (each box its best label).
Either way only the caller's own texts are ever used as labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mmrag.models.grounding.boxes import NMS_IOU, class_wise_nms
from mmrag.models.vision import Box, BoxXYXY


@dataclass(frozen=True)
class Scored:
    """One image's candidate boxes (pixels, ``N x 4``) and their probability for each of its
    texts (``N x texts``)."""

    boxes: torch.Tensor
    scores: torch.Tensor


def ground_boxes(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    phrases: Sequence[str],
    threshold: float,
    max_boxes: int,
    floor: float | None = None,
) -> list[Box]:
    """Each phrase's boxes scoring above ``threshold``, overlaps suppressed, merged by
    :func:`rank_interleaved`.

    ``boxes`` are pixel boxes (``N x 4``), ``scores`` their probabilities for each phrase
    (``N x len(phrases)``). With a ``floor``, a phrase with no box above the threshold still gets
    its single best box if that scores at least ``floor``.
    """
    per_phrase = []
    for column, phrase in enumerate(phrases):
        column_scores = torch.where(has_area(boxes), scores[:, column], 0.0)
        chosen = torch.nonzero(column_scores > threshold).flatten()
        if chosen.numel() == 0 and floor is not None and column_scores.numel():
            best = column_scores.argmax().reshape(1)
            chosen = best if column_scores[best] >= floor else chosen
        labels = torch.zeros_like(chosen)
        kept = chosen[class_wise_nms(boxes[chosen], column_scores[chosen], labels)]
        per_phrase.append(
            [_box(phrase, column_scores[index], boxes[index]) for index in kept.tolist()]
        )
    return rank_interleaved(per_phrase, max_boxes)


def detect_boxes(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    vocabulary: Sequence[str],
    threshold: float,
    max_boxes: int,
) -> list[Box]:
    """Every box whose best label scores above ``threshold``, labelled with it; class-wise NMS;
    best first, at most ``max_boxes``."""
    if scores.numel() == 0:
        return []
    best, labels = scores.max(dim=1)
    chosen = torch.nonzero((best > threshold) & has_area(boxes)).flatten()
    kept = chosen[class_wise_nms(boxes[chosen], best[chosen], labels[chosen])]
    return [
        _box(vocabulary[int(labels[index])], best[index], boxes[index])
        for index in kept[:max_boxes].tolist()
    ]


def suppress_overlaps(boxes: Sequence[Box], max_boxes: int) -> list[Box]:
    """Class-wise NMS over boxes already labelled (generative detectors), best first, at most
    ``max_boxes``."""
    if not boxes:
        return []
    names = sorted({box.label for box in boxes})
    coordinates = torch.tensor([box.box for box in boxes], dtype=torch.float32)
    scores = torch.tensor([box.score for box in boxes], dtype=torch.float32)
    labels = torch.tensor([names.index(box.label) for box in boxes])
    kept = class_wise_nms(coordinates, scores, labels, NMS_IOU)
    return [boxes[index] for index in kept[:max_boxes].tolist()]


def has_area(boxes: torch.Tensor) -> torch.Tensor:
    """Which boxes are more than a line: a box clipped away (predicted in the padding, or off
    the image) is no answer."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def rank_interleaved(per_phrase: Sequence[Sequence[Box]], max_boxes: int) -> list[Box]:
    """Phrases' ranked boxes merged into one list: every phrase's best box before any phrase's
    second, each rank by score. The list starts with the best box overall, and a cap of
    ``max_boxes`` (at least the number of phrases) still answers every phrase that has a box.
    """
    ranked = [
        (rank, -box.score, order, box)
        for order, boxes in enumerate(per_phrase)
        for rank, box in enumerate(sorted(boxes, key=lambda box: -box.score))
    ]
    ranked.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in ranked[:max_boxes]]


def _box(label: str, score: torch.Tensor, box: torch.Tensor) -> Box:
    x1, y1, x2, y2 = (float(value) for value in box.tolist())
    coordinates: BoxXYXY = (x1, y1, x2, y2)
    return Box(label=label, score=float(score), box=coordinates)
