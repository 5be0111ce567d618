"""Images as an engine takes them: resized to its limits, sent inline as a data URL.

Resizing here, not in the engine, bounds the request's size and the visual tokens it costs,
and fixes the frame boxes come back in: for Qwen-VL the sides are rounded to the processor's
patch multiple (its ``smart_resize``), so the engine's own resize leaves the image as sent and
Qwen2.5-VL's absolute pixel boxes are pixels of the image we sent.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Literal

from PIL import Image

# PNG by default: lossless, so the engine sees the pixels the caller gave (a second lossy
# encoding measurably changed the fixture VLM's captions of 64 px scenes: 23 of 30 right
# with JPEG q95, against 28 of 30 as PNG). JPEG is an option where bandwidth matters more.
JPEG_QUALITY = 95
ImageFormat = Literal["png", "jpeg"]


@dataclass(frozen=True)
class SentImage:
    data_url: str
    size: tuple[int, int]  # (width, height) of the image as sent
    original: tuple[int, int]  # (width, height) of the caller's image


def fit_size(
    width: int, height: int, multiple: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """``(width, height)`` with the aspect kept (as near as ``multiple`` allows), both sides a
    multiple of ``multiple``, and the area within ``[min_pixels, max_pixels]``."""
    new_w = max(multiple, round(width / multiple) * multiple)
    new_h = max(multiple, round(height / multiple) * multiple)
    if new_w * new_h > max_pixels:
        beta = math.sqrt(width * height / max_pixels)
        new_w = max(multiple, math.floor(width / beta / multiple) * multiple)
        new_h = max(multiple, math.floor(height / beta / multiple) * multiple)
    elif new_w * new_h < min_pixels:
        beta = math.sqrt(min_pixels / (width * height))
        new_w = math.ceil(width * beta / multiple) * multiple
        new_h = math.ceil(height * beta / multiple) * multiple
    return new_w, new_h


def prepare_image(
    image: Image.Image,
    multiple: int,
    min_pixels: int,
    max_pixels: int,
    image_format: ImageFormat = "png",
) -> SentImage:
    """The image resized to fit and encoded as a ``data:image/...;base64`` URL."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    size = fit_size(rgb.width, rgb.height, multiple, min_pixels, max_pixels)
    sent = rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    if image_format == "jpeg":
        sent.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        sent.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return SentImage(f"data:image/{image_format};base64,{encoded}", size, rgb.size)


def decode_data_url(url: str) -> Image.Image:
    """The image of a ``data:image/...;base64,`` URL (the test engine's side of the wire)."""
    header, comma, payload = url.partition(",")
    if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
        raise ValueError("not a base64 image data URL")
    return Image.open(io.BytesIO(base64.b64decode(payload, validate=True))).convert("RGB")
