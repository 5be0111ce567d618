"""Box geometry in plain torch: from a model's frame back to original pixels, and NMS.

Detectors predict boxes relative to the image they were fed, which is rarely the caller's image:
processors resize, crop or pad first. Each function here undoes one of those layouts, so that
adapters hand back ``(x1, y1, x2, y2)`` in pixels of the original image. ``torchvision.ops`` is
unusable on the CPU torch this project runs (see :mod:`mmrag.models.torch_setup`), hence NMS in
plain torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mmrag.models.torch_setup import nms_reference

# Boxes of one label overlapping more than this are one object: the usual detection setting.
NMS_IOU = 0.5


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h)`` rows as ``(x1, y1, x2, y2)``."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def clip_to_image(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel boxes clamped into ``[0, width] x [0, height]``, corners put in order
    (``x1 <= x2``, ``y1 <= y2``): generated boxes may name their corners either way round."""
    x_a, y_a, x_b, y_b = boxes.float().unbind(-1)
    xs = torch.stack((torch.minimum(x_a, x_b), torch.maximum(x_a, x_b))).clamp(0, width)
    ys = torch.stack((torch.minimum(y_a, y_b), torch.maximum(y_a, y_b))).clamp(0, height)
    return torch.stack((xs[0], ys[0], xs[1], ys[1]), dim=-1)


def normalised_to_pixels(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Boxes in ``[0, 1]`` of the whole image (the image was resized, not cropped or padded)."""
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=boxes.device)
    return clip_to_image(boxes.float() * scale, width, height)


def padded_square_to_pixels(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Boxes in ``[0, 1]`` of the square the image was padded to (bottom and right) before
    resizing, as OWLv2's processor does: the square's side is ``max(width, height)`` pixels of
    the original, whatever size it was resized to. Parts in the padding are clipped off."""
    side = float(max(width, height))
    return clip_to_image(boxes.float() * side, width, height)


@dataclass(frozen=True)
class ResizeCrop:
    """How a processor that resizes and then centre-crops maps an original image into its frame
    (the cropped input the model saw), for boxes given relative to that frame.

    ``resized`` is the image's size after resizing and ``crop`` the frame's, both
    ``(width, height)``; a crop larger than the resized image pads it evenly instead.
    """

    width: int
    height: int
    resized: tuple[int, int]
    crop: tuple[int, int]

    @classmethod
    def of(cls, image_processor: Any, width: int, height: int) -> ResizeCrop:
        """The layout a transformers CLIP-style image processor (``size``, ``crop_size``,
        ``do_resize``, ``do_center_crop``) gives an image of ``width`` x ``height``."""
        resized = (width, height)
        if getattr(image_processor, "do_resize", True):
            # ``size`` and ``crop_size`` are dicts or transformers' SizeDict (unset fields None).
            size = image_processor.size
            edge = size.get("shortest_edge")
            if edge:
                # Aspect kept, the shorter side brought to the edge, the longer one truncated
                # (as transformers computes it).
                short, long = sorted((width, height))
                scaled_long = int(int(edge) * long / short)
                resized = (int(edge), scaled_long) if width <= height else (scaled_long, int(edge))
            else:
                resized = (int(size.get("width")), int(size.get("height")))
        crop = resized
        crop_size = getattr(image_processor, "crop_size", None)
        if getattr(image_processor, "do_center_crop", False) and crop_size:
            crop = (int(crop_size.get("width")), int(crop_size.get("height")))
        return cls(width, height, resized, crop)

    def to_pixels(self, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes in ``[0, 1]`` of the frame as pixel boxes of the original image."""
        (resized_w, resized_h), (crop_w, crop_h) = self.resized, self.crop
        left, top = _crop_start(resized_w, crop_w), _crop_start(resized_h, crop_h)
        frame = torch.tensor([crop_w, crop_h, crop_w, crop_h], dtype=torch.float32)
        offset = torch.tensor([left, top, left, top], dtype=torch.float32)
        scale = torch.tensor(
            [self.width / resized_w, self.height / resized_h] * 2, dtype=torch.float32
        )
        on_resized = boxes.float().cpu() * frame + offset
        return clip_to_image(on_resized * scale, self.width, self.height)


def _crop_start(resized: int, crop: int) -> int:
    """Where a centred crop starts on the resized side; negative where the crop is larger and
    the side was padded (the smaller half of the padding on the left or top, as transformers
    pads)."""
    if crop > resized:
        return -((crop - resized) // 2)
    return (resized - crop) // 2


def class_wise_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float = NMS_IOU
) -> torch.Tensor:
    """Indices of the boxes NMS keeps, best first; boxes of different labels never suppress
    each other. Each label's boxes are shifted apart (past every other label's) so that one
    plain NMS pass does them all."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    boxes = boxes.float()
    span = boxes.max() - boxes.min() + 1
    shifted = boxes + (labels.to(boxes) * span)[:, None]
    return nms_reference(shifted, scores, iou_threshold)
