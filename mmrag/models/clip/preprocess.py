"""open_clip's inference image preprocessing, re-done in Pillow and numpy.

open_clip builds a torchvision ``Compose`` per model (``open_clip.transform.image_transform``).
We mirror its geometry exactly (same output sizes, same rounding, same crop offsets) but split
it in two: :func:`fit_image` (resize + crop/pad to a uint8 array, cheap to run in decode threads)
and :func:`normalise_batch` (scale and normalise a stacked batch where the model runs). Two
deliberate differences, both invisible in the embeddings (tests compare against open_clip):

- images are converted to RGB *before* resizing, so palette and 1-bit images are resampled in
  RGB (Pillow resizes ``P``/``1`` images with nearest-neighbour only);
- downscaling passes ``reducing_gap=3.0``: Pillow first shrinks by an integer factor with a box
  filter, then resamples. Pillow documents the result as indistinguishable from a full resample
  at this gap, and it is several times faster on camera-sized images;
- the resampling itself runs on torch's uint8 kernels, which reproduce Pillow's filters to
  within two grey levels at a fraction of the CPU (:mod:`mmrag.models.resample`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmrag.models.resample import resize as resample_image

PreparedImage = npt.NDArray[np.uint8]  # H x W x 3, already at the model's input size
ResizeMode = Literal["shortest", "longest", "squash"]

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
_REDUCING_GAP = 3.0


@dataclass(frozen=True)
class ImagePreprocess:
    """The preprocessing a model expects; built from open_clip's ``preprocess_cfg``."""

    height: int = 224
    width: int = 224
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resample: Image.Resampling = Image.Resampling.BICUBIC
    resize_mode: ResizeMode = "shortest"
    fill: int = 0

    @classmethod
    def from_open_clip(cls, cfg: Mapping[str, Any]) -> ImagePreprocess:
        size = cfg.get("size", 224)
        # open_clip sizes are (height, width) when not square.
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        mode = cfg.get("resize_mode", "shortest")
        if mode not in ("shortest", "longest", "squash"):
            raise ValueError(f"unknown open_clip resize_mode {mode!r}")
        interpolation = cfg.get("interpolation", "bicubic")
        if interpolation not in _RESAMPLE:
            raise ValueError(f"unknown open_clip interpolation {interpolation!r}")
        return cls(
            height=height,
            width=width,
            mean=_triple(cfg.get("mean", cls.mean)),
            std=_triple(cfg.get("std", cls.std)),
            resample=_RESAMPLE[interpolation],
            resize_mode=cast(ResizeMode, mode),
            fill=int(cfg.get("fill_color", 0)),
        )


def fit_image(image: Image.Image, cfg: ImagePreprocess) -> PreparedImage:
    """Resize and crop (or pad) ``image`` to the model's input, as open_clip's eval transform."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if cfg.resize_mode == "squash":
        fitted = _resize(rgb, (cfg.width, cfg.height), cfg.resample)
    elif cfg.resize_mode == "shortest":
        fitted = _centre_crop_or_pad(_resize_shortest(rgb, cfg), cfg, fill=0)
    else:
        fitted = _centre_crop_or_pad(_resize_keep_ratio(rgb, cfg, longest=True), cfg, cfg.fill)
    return np.asarray(fitted, dtype=np.uint8)


def normalise_batch(batch: Any, cfg: ImagePreprocess) -> Any:
    """uint8 ``N x H x W x 3`` tensor -> float ``N x 3 x H x W``, scaled and normalised.

    Runs on whatever device ``batch`` lives on: uploading uint8 moves a quarter of the bytes.
    """
    import torch

    # (x / 255 - mean) / std folded into one multiply-add: two passes over the batch, not four.
    std = torch.tensor(cfg.std, dtype=torch.float64)
    scale = (1.0 / (255.0 * std)).float().to(batch.device).view(1, 3, 1, 1)
    shift = (-torch.tensor(cfg.mean, dtype=torch.float64) / std).float()
    pixels = batch.permute(0, 3, 1, 2).float()
    return pixels.mul_(scale).add_(shift.to(batch.device).view(1, 3, 1, 1))


def normalise_array(batch: npt.NDArray[np.uint8], cfg: ImagePreprocess) -> npt.NDArray[np.float32]:
    """:func:`normalise_batch` in numpy, with the same fp32 multiply and add, for runtimes that
    take numpy input (ONNX Runtime, OpenVINO)."""
    std = np.asarray(cfg.std, dtype=np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(1, 3, 1, 1)
    shift = (-np.asarray(cfg.mean, dtype=np.float64) / std).astype(np.float32).reshape(1, 3, 1, 1)
    pixels = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
    pixels *= scale
    pixels += shift
    return pixels


# -- geometry, step by step as torchvision does it -------------------------------------------


def _resize_shortest(image: Image.Image, cfg: ImagePreprocess) -> Image.Image:
    if cfg.height != cfg.width:
        # open_clip uses ResizeKeepRatio for non-square targets.
        return _resize_keep_ratio(image, cfg, longest=False)
    # torchvision Resize(int): the short side becomes exactly ``size``, the long side is
    # truncated (``int``), not rounded.
    size = cfg.height
    short, long = sorted((image.width, image.height))
    new_long = int(size * long / short)
    new_size = (size, new_long) if image.width <= image.height else (new_long, size)
    return _resize(image, new_size, cfg.resample)


def _resize_keep_ratio(image: Image.Image, cfg: ImagePreprocess, longest: bool) -> Image.Image:
    # open_clip ResizeKeepRatio: divide both sides by the larger (longest) or smaller ratio.
    ratio_h, ratio_w = image.height / cfg.height, image.width / cfg.width
    ratio = max(ratio_h, ratio_w) if longest else min(ratio_h, ratio_w)
    new_size = (round(image.width / ratio), round(image.height / ratio))
    return _resize(image, new_size, cfg.resample)


def _resize(image: Image.Image, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    # The box-filter shortcut is taken only when shrinking by at least the gap.
    return resample_image(image, size, resample, _REDUCING_GAP)


def _centre_crop_or_pad(image: Image.Image, cfg: ImagePreprocess, fill: int) -> Image.Image:
    # torchvision center_crop / open_clip center_crop_or_pad: pad evenly (extra pixel right and
    # bottom), then crop at round((size - crop) / 2).
    if image.width < cfg.width or image.height < cfg.height:
        padded_w, padded_h = max(image.width, cfg.width), max(image.height, cfg.height)
        canvas = Image.new("RGB", (padded_w, padded_h), (fill, fill, fill))
        canvas.paste(image, ((padded_w - image.width) // 2, (padded_h - image.height) // 2))
        image = canvas
    top = round((image.height - cfg.height) / 2.0)
    left = round((image.width - cfg.width) / 2.0)
    if (left, top, image.width, image.height) == (0, 0, cfg.width, cfg.height):
        return image
    return image.crop((left, top, left + cfg.width, top + cfg.height))


def _triple(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ValueError(f"expected three channel values, got {list(values)}")
    return (float(values[0]), float(values[1]), float(values[2]))
