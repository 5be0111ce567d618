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

# How images are encoded. "auto": PNG (lossless) up to AUTO_PNG_MAX_PIXELS, JPEG above. Small
# images lose proportionally most to JPEG's 8 x 8 blocks: JPEG q95 changed the fixture VLM's
# captions of 64 px scenes (23 of 30 named every shape, against 28 of 30 as PNG). Large ones
# cost most to PNG-encode: a 640 x 640 photo takes about 20 ms as PNG (zlib level 1, which is
# also smaller than the default level on noisy photos) against 2 ms as JPEG q95, and sends
# 2-3 times the bytes (measured: bench/engine_in_flight.py).
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 1
AUTO_PNG_MAX_PIXELS = 512 * 512
ImageFormat = Literal["auto", "png", "jpeg"]


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
    image_format: ImageFormat = "auto",
) -> SentImage:
    """The image resized to fit and encoded as a ``data:image/...;base64`` URL."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    size = fit_size(rgb.width, rgb.height, multiple, min_pixels, max_pixels)
    sent = rgb if size == rgb.size else rgb.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    encoding = image_format
    if encoding == "auto":
        encoding = "png" if size[0] * size[1] <= AUTO_PNG_MAX_PIXELS else "jpeg"
    if encoding == "jpeg":
        sent.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        sent.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return SentImage(f"data:image/{encoding};base64,{encoded}", size, rgb.size)
