"""An image with its cited boxes and labels drawn on it (Pillow), as PNG bytes for Slack."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

# A colour no fixture scene uses and few photos are full of, so the boxes stand out.
BOX_RGB = (255, 0, 255)
LABEL_TEXT_RGB = (255, 255, 255)
LABEL_BACKGROUND_RGB = (0, 0, 0)
# Small images (the 64-px fixture scenes, icons) are enlarged first so labels stay readable;
# large ones are shrunk so an upload stays small.
MIN_SIDE = 256
MAX_SIDE = 1600


@dataclass(frozen=True)
class DrawnBox:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the original


def display_scale(width: int, height: int) -> float:
    """The factor the drawn image is resized by: boxes scale with it."""
    shorter, longer = min(width, height), max(width, height)
    if shorter < MIN_SIDE:
        return min(MIN_SIDE / shorter, MAX_SIDE / longer)
    if longer > MAX_SIDE:
        return MAX_SIDE / longer
    return 1.0


def draw_boxes(image: Image.Image, boxes: Sequence[DrawnBox]) -> bytes:
    scale = display_scale(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Nearest keeps the enlarged fixture scenes' edges sharp, so a box lines up with them.
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    canvas = image.convert("RGB").resize(size, resample)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, round(min(size) / 24)))
    width = max(2, round(min(size) / 128))
    for drawn in boxes:
        x1, y1, x2, y2 = (round(value * scale) for value in drawn.box)
        # The original's x2/y2 are exclusive: the outline covers the last column and row.
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=BOX_RGB, width=width)
        text = f"{drawn.label} {drawn.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left, bottom - top + 4
        # Above the box where there is room, else inside its top edge.
        ty = y1 - text_h if y1 - text_h >= 0 else y1 + width
        tx = min(max(0, x1), max(0, size[0] - text_w - 4))
        draw.rectangle((tx, ty, tx + text_w + 4, ty + text_h), fill=LABEL_BACKGROUND_RGB)
        draw.text((tx + 2 - left, ty + 2 - top), text, fill=LABEL_TEXT_RGB, font=font)
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()
