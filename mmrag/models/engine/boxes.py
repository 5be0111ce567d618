"""Boxes that engines write as text, read back as pixels of the caller's image.

- Qwen2.5-VL: JSON, ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}, ...]`` (often in a
  ```json fence), in absolute pixels of the image it was fed, which is the image as sent
  (see :mod:`mmrag.models.engine.images`);
- Qwen2-VL / Qwen3-VL: the same JSON (Qwen3-VL) or ``(x1,y1),(x2,y2)`` between box tokens
  (Qwen2-VL), on a 0-1000 grid of the whole image;
- Florence-2: ``<loc_N>`` tokens, four to a box, N a bin of 1000 along each side; a bin
  stands for its centre, as Florence-2's own post-processing reads it.

Nothing here raises on what a model wrote: text with no box in it is an answer with no boxes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from mmrag.models.engine.target import BoxFormat
from mmrag.models.vision import BoxXYXY, clip_box

GRID = 1000.0
_FENCE = re.compile(r"```(?:json)?\s*(.*?)(?:```|$)", re.DOTALL)
_BBOX_2D = re.compile(r'"bbox_2d"\s*:\s*\[([^\]]*)\]')
_NUMBER = r"\s*([-\d.]+)\s*"
_QWEN2_BOX = re.compile(rf"\({_NUMBER},{_NUMBER}\)\s*,\s*\({_NUMBER},{_NUMBER}\)")
_LOC = re.compile(r"<loc_(\d{1,4})>")


def read_boxes(
    text: str, box_format: BoxFormat, sent: tuple[int, int], original: tuple[int, int]
) -> list[BoxXYXY]:
    """The boxes in a model's answer, in pixels of the original image (clipped to it; boxes
    with no area dropped), in the order written. ``sent`` and ``original`` are
    ``(width, height)`` of the image as sent and as the caller has it."""
    width, height = original
    match box_format:
        case "qwen2.5":
            scale = (width / sent[0], height / sent[1])
            raw = [_scaled(box, scale) for box in _json_boxes(text)]
        case "grid1000":
            scale = (width / GRID, height / GRID)
            found = list(_json_boxes(text)) or list(_qwen2_boxes(text))
            raw = [_scaled(box, scale) for box in found]
        case "florence":
            raw = [_bins_to_pixels(box, width, height) for box in _loc_boxes(text)]
        case "none":
            raw = []
    boxes = [clip_box(_ordered(box), width, height) for box in raw]
    return [box for box in boxes if box[2] > box[0] and box[3] > box[1]]


def _json_boxes(text: str) -> Iterator[tuple[float, float, float, float]]:
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        # Cut off by the token budget, or prose around the JSON: take each complete box.
        for match in _BBOX_2D.finditer(body):
            box = _four(match.group(1).split(","))
            if box is not None:
                yield box
        return
    items = parsed if isinstance(parsed, list) else [parsed]
    for item in items:
        if isinstance(item, dict):
            box = _four(item.get("bbox_2d") or item.get("bbox"))
            if box is not None:
                yield box


def _qwen2_boxes(text: str) -> Iterator[tuple[float, float, float, float]]:
    for match in _QWEN2_BOX.finditer(text):
        box = _four(match.groups())
        if box is not None:
            yield box


def _loc_boxes(text: str) -> Iterator[tuple[float, float, float, float]]:
    bins = [int(value) for value in _LOC.findall(text)]
    for start in range(0, len(bins) - 3, 4):
        x1, y1, x2, y2 = bins[start : start + 4]
        yield (float(x1), float(y1), float(x2), float(y2))


def _four(values: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(values, list | tuple) or len(values) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(value) for value in values)
    except (TypeError, ValueError):
        return None
    return (x1, y1, x2, y2)


def _scaled(
    box: tuple[float, float, float, float], scale: tuple[float, float]
) -> tuple[float, float, float, float]:
    sx, sy = scale
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def _bins_to_pixels(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float]:
    sx, sy = width / GRID, height / GRID
    return ((box[0] + 0.5) * sx, (box[1] + 0.5) * sy, (box[2] + 0.5) * sx, (box[3] + 0.5) * sy)


def _ordered(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Corners in order: a model may name them either way round."""
    x1, y1, x2, y2 = box
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
