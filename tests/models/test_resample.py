"""Resizing on torch's kernels gives Pillow's pictures: sizes exact, pixels within 2 grey levels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from mmrag.models.resample import fitted_size, resize


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth regions with edges and mild noise: what resizing meets in photos."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    pixels = np.asarray(base, dtype=np.int16) + rng.integers(-8, 9, (height, width, 3))
    pixels[height // 3 : height // 2, width // 4 : width // 2] = (250, 20, 40)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.SMOOTH)


def _grey_levels(ours: Image.Image, pillows: Image.Image) -> np.ndarray:
    return np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(pillows, dtype=np.int16))


@pytest.mark.parametrize("resample", [Image.Resampling.BICUBIC, Image.Resampling.BILINEAR])
@pytest.mark.parametrize(
    ("source", "target", "gap"),
    [
        ((320, 240), (298, 224), 3.0),  # a JPEG decoded at half scale, to the model input
        ((320, 240), (256, 192), 2.0),  # the same, to a thumbnail
        ((97, 150), (224, 346), 3.0),  # enlarging a small image
        ((2000, 1500), (298, 224), 3.0),  # far enough down for Pillow's box pre-reduction
        ((1999, 1501), (256, 192), 2.0),  # ... on sides its factor does not divide
        ((1100, 825), (298, 224), 3.0),  # just short of it
        ((640, 480), (224, 224), None),  # no gap: the filter over the whole image
    ],
)
def test_resize_gives_pillows_picture(
    source: tuple[int, int],
    target: tuple[int, int],
    gap: float | None,
    resample: Image.Resampling,
) -> None:
    image = _photo(*source)
    ours = resize(image, target, resample, gap)
    pillows = image.resize(target, resample, reducing_gap=gap)
    assert ours.size == pillows.size == target
    assert ours.mode == "RGB"
    levels = _grey_levels(ours, pillows)
    assert levels.max() <= 2  # bicubic enlarging: a few pixels at 2, the rest at 0 or 1
    assert levels.mean() < 0.1


def test_filters_and_modes_torch_lacks_are_pillows_own() -> None:
    image = _photo(120, 90)
    nearest = resize(image, (50, 40), Image.Resampling.NEAREST)
    assert nearest.tobytes() == image.resize((50, 40), Image.Resampling.NEAREST).tobytes()
    grey = image.convert("L")
    bicubic = resize(grey, (50, 40), Image.Resampling.BICUBIC, 3.0)
    assert bicubic.mode == "L"
    pillows = grey.resize((50, 40), Image.Resampling.BICUBIC, reducing_gap=3.0)
    assert bicubic.tobytes() == pillows.tobytes()


def test_an_image_already_at_the_size_is_returned_as_it_is() -> None:
    image = _photo(64, 48)
    assert resize(image, (64, 48), Image.Resampling.BICUBIC) is image


def test_fitted_size_is_what_pillows_thumbnail_picks() -> None:
    rng = np.random.default_rng(1)
    sizes = [(1, 1), (1, 300), (300, 1), (256, 256), (257, 256), (640, 480), (480, 640)]
    sizes += [(int(w), int(h)) for w, h in rng.integers(1, 3000, (300, 2))]
    for max_px in (64, 256, 300):
        for size in sizes:
            image = Image.new("RGB", size)
            image.thumbnail((max_px, max_px), Image.Resampling.NEAREST)
            assert fitted_size(size, max_px) == image.size, (size, max_px)
