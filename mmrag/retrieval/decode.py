"""Bytes in, a safe RGB image out: the only place untrusted image bytes meet Pillow.

Every refusal is typed: :class:`~mmrag.errors.TooLarge` for byte and pixel limits
(decompression bombs included), :class:`~mmrag.errors.InvalidInput` for an aspect ratio over
the limit, :class:`~mmrag.errors.UnsupportedMedia` for anything that is not a whole image in
one of :data:`ALLOWED_FORMATS`. Pixels are never allocated before the size is known to be
within the limits: ``Image.open`` reads only the header.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mmrag.config import LimitSettings
from mmrag.errors import InvalidInput, TooLarge, UnsupportedMedia
from mmrag.models.resample import fitted_size, resize

# Formats with a plain, well-exercised decoder. Leaving the rest out keeps Pillow from
# handing hostile bytes to exotic plugins (EPS would even start Ghostscript).
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")

ThumbnailFormat = Literal["JPEG", "WEBP"]

# What Pillow raises on hostile or damaged input varies by plugin; all of it means "not a
# decodable image" to us. MemoryError is left out on purpose: it is not the caller's fault.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    struct.error,
    zlib.error,
)

# Pillow's own bomb check. Between MAX_IMAGE_PIXELS and twice that it only warns, and that
# warning is an exception only where the application's warning filters make it one; either
# way our explicit pixel check after Image.open refuses the image (MAX_IMAGE_PIXELS is never
# below our limit, see _allow_pixels), so no global warning filter is needed here.
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)

_pillow_lock = threading.Lock()


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image and the facts the index stores about its original bytes (their
    SHA-256 is the caller's: most decode stored or query images and never need it).

    ``width`` and ``height`` are the full size after EXIF orientation. ``image`` is RGB and
    may hold fewer pixels than that when :func:`decode_image` was allowed to reduce a JPEG
    while decoding (``at_least``).
    """

    width: int
    height: int
    format: str
    byte_size: int
    image: Image.Image

    @property
    def mime_type(self) -> str:
        return mime_type_of_format(self.format)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_id_from_sha256(sha256: str) -> str:
    """Image ids are the first 32 hex digits of the SHA-256 of the original bytes."""
    return sha256[:32]


def mime_type_of_format(image_format: str) -> str:
    name = image_format.upper()
    if name == "MPO":  # a camera JPEG with extra frames: every viewer takes it as JPEG
        return "image/jpeg"
    Image.init()
    return Image.MIME.get(name, "application/octet-stream")


def sniff_mime_type(data: bytes) -> str:
    """The media type of stored image bytes (originals or thumbnails) from their magic."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:2] == b"BM":
        return "image/bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    return "application/octet-stream"


def check_byte_size(size: int, limits: LimitSettings) -> None:
    if size > limits.max_image_bytes:
        raise TooLarge(f"image is {size} bytes, over the limit of {limits.max_image_bytes}")


def decode_image(
    data: bytes, limits: LimitSettings, *, at_least: tuple[int, int] | None = None
) -> DecodedImage:
    """Decode untrusted bytes into an RGB image, or raise a typed error.

    ``at_least`` is ``(longest side, shortest side)`` in pixels that the caller needs; a
    JPEG may then be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, several times
    cheaper than a full decode plus resize) as long as it keeps that many pixels.
    """
    check_byte_size(len(data), limits)
    if not data:
        raise UnsupportedMedia("empty file (0 bytes)")
    _allow_pixels(limits.max_image_pixels)
    try:
        opened = Image.open(io.BytesIO(data), formats=_allowed_formats())
    except _BOMB_ERRORS as error:
        raise TooLarge(f"image dimensions over the pixel limit: {_first_line(error)}") from error
    except UnidentifiedImageError as error:
        raise UnsupportedMedia(
            f"not an image in a supported format ({', '.join(ALLOWED_FORMATS)})"
        ) from error
    except _DECODE_ERRORS as error:
        raise UnsupportedMedia(f"unreadable image header: {_first_line(error)}") from error
    with opened:
        image_format = opened.format or "unknown"
        width, height = opened.size
        # The header is all that has been read: refuse before a pixel is allocated.
        if width * height > limits.max_image_pixels:
            raise TooLarge(
                f"image is {width}x{height} = {width * height} pixels, over the limit of "
                f"{limits.max_image_pixels}"
            )
        _check_aspect_ratio(width, height, limits.max_aspect_ratio)
        try:
            if at_least is not None:
                _reduce_while_decoding(opened, at_least)
            rgb, oriented = _load_first_frame_rgb(opened)
        except _BOMB_ERRORS as error:
            raise TooLarge(f"image over the pixel limit: {_first_line(error)}") from error
        except _DECODE_ERRORS as error:
            raise UnsupportedMedia(
                f"corrupt or truncated {image_format} data: {_first_line(error)}"
            ) from error
    if oriented:
        width, height = height, width
    return DecodedImage(
        width=width,
        height=height,
        format=image_format,
        byte_size=len(data),
        image=rgb,
    )


def make_thumbnail(
    image: Image.Image, max_px: int, image_format: ThumbnailFormat = "JPEG"
) -> bytes:
    """Encoded thumbnail bytes, longest side ``max_px`` (never enlarged)."""
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    size = fitted_size(rgb.size, max_px)
    thumb = resize(rgb, size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    if image_format == "WEBP":
        thumb.save(out, "WEBP", quality=80, method=4)
    else:
        thumb.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


# -- internals -----------------------------------------------------------------------------


def _allowed_formats() -> list[str]:
    Image.init()
    return [name for name in ALLOWED_FORMATS if name in Image.OPEN]


def _allow_pixels(limit: int) -> None:
    """Keep Pillow's own bomb check from refusing what our (higher) limit allows.

    The global only ever rises, so it never loosens a lower limit another caller relies on
    more than our configuration asks for; our explicit check enforces the configured one.
    """
    with _pillow_lock:
        current = Image.MAX_IMAGE_PIXELS
        if current is not None and current < limit:
            Image.MAX_IMAGE_PIXELS = limit


def _check_aspect_ratio(width: int, height: int, limit: float) -> None:
    """Refuse slivers: preprocessing scales the shorter side up, the longer one with it."""
    longer, shorter = max(width, height), min(width, height)
    if longer > limit * shorter:
        ratio = f"{longer / shorter:.1f}:1" if shorter else "unbounded"
        raise InvalidInput(
            f"image is {width}x{height}, an aspect ratio of {ratio}, over the limit of {limit:g}:1"
        )


def _reduce_while_decoding(image: ImageFile.ImageFile, at_least: tuple[int, int]) -> None:
    if image.format != "JPEG":
        return
    longest, shortest = at_least
    width, height = image.size
    # draft() wants the minimum size in stored orientation; EXIF rotation keeps which side
    # is the longer one, so matching longest to longest is enough.
    wanted = (longest, shortest) if width >= height else (shortest, longest)
    image.draft(None, wanted)


def _load_first_frame_rgb(image: ImageFile.ImageFile) -> tuple[Image.Image, bool]:
    """The first frame, EXIF-oriented, as RGB; and whether orientation swapped the sides."""
    image.seek(0)  # animated GIF/WebP/TIFF: the first frame stands for the image
    image.load()
    stored = image.size
    oriented = ImageOps.exif_transpose(image)
    swapped = oriented.size != stored and oriented.size == (stored[1], stored[0])
    return _to_rgb(oriented), swapped


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_rgb(image)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels hold arbitrary colours; compositing on white shows what a
        # viewer shows, and what the caption describes.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale to 8 bits by scaling, not clipping (which turns most of a
    16-bit image white)."""
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        top = 1.0 if values.size and float(values.max()) <= 1.0 else 255.0
    elif image.mode == "I" and values.size and float(values.max()) <= 255.0:
        top = 255.0
    else:
        top = 65535.0
    scaled = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled).convert("RGB")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
