"""Image bytes for the ingest tests, built with Pillow (good ones) or by hand (hostile ones)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

ORIENTATION = 0x0112


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, image_format, **options)
    return out.getvalue()


def scene(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """A smooth gradient with a block, so JPEGs stay small and distinct per seed."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    block = Image.new("RGB", (max(1, width // 4), max(1, height // 4)), _colour(seed))
    image.paste(block, ((seed * 7) % max(1, width // 2), (seed * 5) % max(1, height // 2)))
    return image


def jpeg(size: tuple[int, int] = (64, 48), seed: int = 0, **options: object) -> bytes:
    return encode(scene(size, seed), "JPEG", quality=90, **options)


def png(image: Image.Image) -> bytes:
    return encode(image, "PNG")


def jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def animated_gif(colours: list[tuple[int, int, int]], size: tuple[int, int] = (16, 16)) -> bytes:
    frames = [Image.new("RGB", size, colour) for colour in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose data is a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def small_file_decoding_huge(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of ``width`` x ``height``: a few KiB that decode to megapixels."""
    return encode(Image.new("1", (width, height), 0), "PNG", optimize=True)


def sliver(width: int, height: int) -> bytes:
    """A real, valid PNG with an extreme aspect ratio: tiny in bytes and in pixels."""
    return encode(Image.new("L", (width, height), 128), "PNG", optimize=True)


def _colour(seed: int) -> tuple[int, int, int]:
    return ((seed * 97) % 256, (seed * 57 + 80) % 256, (seed * 31 + 160) % 256)
