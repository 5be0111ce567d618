"""Decoding untrusted bytes: typed refusals for every bad input, RGB out for every good one."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image
from retrieval import ingest_images as images

from mmrag.config import LimitSettings
from mmrag.errors import InvalidInput, TooLarge, UnsupportedMedia
from mmrag.retrieval.decode import decode_image, make_thumbnail, sniff_mime_type

LIMITS = LimitSettings()


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return (int(value[0]), int(value[1]), int(value[2]))


def close(
    actual: tuple[int, int, int], expected: tuple[int, int, int], tolerance: int = 12
) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# -- good inputs -----------------------------------------------------------------------------


def test_jpeg_gives_its_facts() -> None:
    data = images.jpeg((64, 48))

    decoded = decode_image(data, LIMITS)

    assert (decoded.width, decoded.height) == (64, 48)
    assert decoded.format == "JPEG"
    assert decoded.mime_type == "image/jpeg"
    assert decoded.byte_size == len(data)
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (64, 48)


def test_exif_orientation_is_applied() -> None:
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste(Image.new("RGB", (8, 8), (255, 0, 0)), (0, 0))  # red mark top-left
    data = images.jpeg_with_orientation(stored, 6)  # 6: display rotated 90° clockwise

    decoded = decode_image(data, LIMITS)

    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.image.size == (20, 40)
    assert close(pixel(decoded.image, 17, 2), (255, 0, 0), 40)  # mark now top-right
    assert close(pixel(decoded.image, 2, 2), (0, 0, 255), 40)


def test_reduced_decode_keeps_full_size_facts_and_orientation() -> None:
    data = images.jpeg_with_orientation(images.scene((1280, 960)), 6)

    decoded = decode_image(data, LIMITS, at_least=(256, 224))

    assert (decoded.width, decoded.height) == (960, 1280)
    assert decoded.image.size == (240, 320)  # decoded at 1/4 scale, still >= 224 x 256


def test_reduced_decode_never_goes_below_what_was_asked() -> None:
    decoded = decode_image(images.jpeg((640, 480)), LIMITS, at_least=(256, 224))

    assert decoded.image.size == (320, 240)
    assert min(decoded.image.size) >= 224


def test_animated_gif_gives_its_first_frame() -> None:
    data = images.animated_gif([(255, 0, 0), (0, 0, 255), (0, 255, 0)])

    decoded = decode_image(data, LIMITS)

    assert decoded.format == "GIF"
    assert decoded.image.mode == "RGB"
    assert close(pixel(decoded.image, 8, 8), (255, 0, 0))


def test_cmyk_becomes_rgb() -> None:
    data = images.encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)

    decoded = decode_image(data, LIMITS)

    assert decoded.image.mode == "RGB"
    assert close(pixel(decoded.image, 8, 8), (255, 0, 0), 30)


def test_palette_with_transparency_is_composited_on_white() -> None:
    palette_image = Image.new("P", (16, 16), 0)
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.paste(1, (8, 0, 16, 16))
    data = images.encode(palette_image, "PNG", transparency=0)

    decoded = decode_image(data, LIMITS)

    assert close(pixel(decoded.image, 2, 8), (255, 255, 255), 0)
    assert close(pixel(decoded.image, 12, 8), (0, 0, 255), 0)


def test_rgba_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # fully transparent red
    rgba.paste((0, 255, 0, 255), (8, 0, 16, 16))
    rgba.paste((0, 0, 0, 128), (0, 8, 8, 16))  # half-transparent black

    decoded = decode_image(images.png(rgba), LIMITS)

    assert pixel(decoded.image, 2, 2) == (255, 255, 255)
    assert pixel(decoded.image, 12, 2) == (0, 255, 0)
    assert close(pixel(decoded.image, 2, 12), (127, 127, 127), 2)


def test_grey_with_alpha_becomes_rgb() -> None:
    grey = Image.new("LA", (8, 8), (0, 0))

    decoded = decode_image(images.png(grey), LIMITS)

    assert decoded.image.mode == "RGB"
    assert pixel(decoded.image, 4, 4) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    values = np.zeros((8, 8), dtype=np.uint16)
    values[:, 4:] = 32768
    values[0, 0] = 65535
    data = images.png(Image.fromarray(values))

    decoded = decode_image(data, LIMITS)

    assert decoded.image.mode == "RGB"
    assert pixel(decoded.image, 6, 6) == (128, 128, 128)
    assert pixel(decoded.image, 0, 0) == (255, 255, 255)
    assert pixel(decoded.image, 1, 1) == (0, 0, 0)


@pytest.mark.parametrize("image_format", ["JPEG", "WEBP"])
def test_thumbnail_has_its_longest_side_at_the_limit(image_format: str) -> None:
    decoded = decode_image(images.jpeg((640, 480)), LIMITS)

    thumbnail = make_thumbnail(decoded.image, 128, image_format)  # type: ignore[arg-type]

    with Image.open(__import__("io").BytesIO(thumbnail)) as opened:
        assert opened.format == image_format
        assert opened.size == (128, 96)
    assert sniff_mime_type(thumbnail) == f"image/{image_format.lower()}"


def test_thumbnail_never_enlarges() -> None:
    thumbnail = make_thumbnail(Image.new("RGB", (20, 10)), 256)

    with Image.open(__import__("io").BytesIO(thumbnail)) as opened:
        assert opened.size == (20, 10)


# -- bad inputs: one test each ---------------------------------------------------------------


def refused(data: bytes, error: type[Exception], limits: LimitSettings = LIMITS) -> str:
    with pytest.raises(error) as caught:
        decode_image(data, limits)
    message = str(caught.value)
    assert message
    assert "\n" not in message
    return message


def test_zero_bytes_is_unsupported() -> None:
    assert "empty" in refused(b"", UnsupportedMedia)


def test_text_named_jpg_is_unsupported() -> None:
    assert "not an image" in refused(b"hello, I am a text file\n" * 10, UnsupportedMedia)


def test_random_bytes_are_unsupported() -> None:
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    refused(noise, UnsupportedMedia)


def test_truncated_jpeg_is_unsupported() -> None:
    data = images.jpeg((256, 256))

    message = refused(data[: len(data) // 2], UnsupportedMedia)

    assert "truncated" in message


def test_corrupt_png_body_is_unsupported() -> None:
    data = bytearray(images.png(images.scene((64, 64))))
    data[60:80] = b"\xff" * 20  # inside IDAT: the CRC check or zlib fails

    refused(bytes(data), UnsupportedMedia)


def test_format_outside_the_allowed_list_is_unsupported() -> None:
    pcx = images.encode(Image.new("RGB", (8, 8)), "PCX")

    refused(pcx, UnsupportedMedia)


def test_over_the_byte_limit_is_too_large() -> None:
    data = images.jpeg((256, 256))
    limits = LimitSettings(max_image_bytes=1024)

    assert "bytes" in refused(data, TooLarge, limits)


def test_header_claiming_a_huge_image_is_too_large() -> None:
    # 10^10 pixels: Pillow's own bomb check refuses inside Image.open.
    refused(images.png_claiming(100_000, 100_000), TooLarge)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_raised_inside_open_is_too_large() -> None:
    # 10^8 pixels: Pillow only warns; where an application makes the warning an error,
    # Image.open itself refuses, and that becomes TooLarge too.
    refused(images.png_claiming(10_000, 10_000), TooLarge)


@pytest.mark.parametrize("action", ["ignore", "default"])
def test_own_pixel_check_refuses_even_when_pillow_only_warns(action: str) -> None:
    with warnings.catch_warnings(record=True):  # "default": recorded, not printed
        warnings.simplefilter(action, Image.DecompressionBombWarning)  # type: ignore[arg-type]

        refused(images.png_claiming(10_000, 10_000), TooLarge)


def test_importing_decode_leaves_warning_filters_alone() -> None:
    # A library must not change process-wide warning filters; a fresh interpreter shows it.
    script = (
        "import warnings\n"
        "import numpy, PIL.Image, mmrag.config, mmrag.errors\n"  # their own filters first
        "before = list(warnings.filters)\n"
        "import mmrag.retrieval.decode\n"
        "assert warnings.filters == before, warnings.filters[:2]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_fifty_megapixel_png_over_the_limit_is_too_large() -> None:
    data = images.small_file_decoding_huge(8_000, 6_250)
    assert len(data) < 64 * 1024  # a small file ...

    message = refused(data, TooLarge)  # ... that would decode to 50 megapixels

    assert "50000000" in message


def test_pixel_limit_comes_from_settings() -> None:
    limits = LimitSettings(max_image_pixels=64 * 64)

    refused(images.jpeg((65, 64)), TooLarge, limits)
    assert decode_image(images.jpeg((64, 64)), limits).width == 64


@pytest.mark.parametrize("size", [(1, 20_000), (20_000, 1)])
def test_extreme_aspect_ratio_is_refused(size: tuple[int, int]) -> None:
    data = images.sliver(*size)
    assert size[0] * size[1] <= LIMITS.max_image_pixels  # the pixel limit lets it through

    with pytest.raises(InvalidInput) as caught:
        decode_image(data, LIMITS)

    message = str(caught.value)
    assert type(caught.value) is InvalidInput
    assert "aspect ratio of 20000.0:1" in message
    assert "limit of 64:1" in message
    assert "\n" not in message


def test_aspect_ratio_is_checked_from_the_header() -> None:
    # The header claims 1 x 20000, the pixel data is a few rows: a full decode would fail
    # as truncated (UnsupportedMedia); the ratio check refuses before that.
    with pytest.raises(InvalidInput) as caught:
        decode_image(images.png_claiming(1, 20_000), LIMITS)

    assert type(caught.value) is InvalidInput
    assert "aspect ratio" in str(caught.value)


@pytest.mark.parametrize("size", [(640, 10), (10, 640), (64, 1)])
def test_aspect_ratio_at_the_limit_passes(size: tuple[int, int]) -> None:
    decoded = decode_image(images.sliver(*size), LIMITS)

    assert (decoded.width, decoded.height) == size


def test_aspect_ratio_limit_comes_from_settings() -> None:
    limits = LimitSettings(max_aspect_ratio=2.0)

    with pytest.raises(InvalidInput, match="limit of 2:1"):
        decode_image(images.jpeg((65, 32)), limits)
    assert decode_image(images.jpeg((64, 32)), limits).width == 64
