"""Make torchvision importable on a CPU-only torch.

The only torchvision built for torch 2.13 is linked against CUDA. On the CPU build of torch its
compiled operators never register, and ``import torchvision`` dies on
``operator torchvision::nms does not exist`` (and with it open_clip, timm and most transformers
image processors). Defining the two operator schemas it registers fake kernels for, with a
plain-torch CPU kernel, is enough for it to import. On a torch where torchvision's own
operators loaded (a CUDA machine) this is a no-op.

Call :func:`ensure_torchvision` before anything imports torchvision.
"""

from __future__ import annotations

import logging
import threading

import torch

log = logging.getLogger(__name__)

_lock = threading.Lock()
_done = False


def _operator_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of kept boxes, highest score first."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    x1, y1, x2, y2 = boxes.float().unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep: list[int] = []
    for index in order.tolist():
        if suppressed[index]:
            continue
        keep.append(index)
        width = (torch.minimum(x2[index], x2) - torch.maximum(x1[index], x1)).clamp(min=0)
        height = (torch.minimum(y2[index], y2) - torch.maximum(y1[index], y1)).clamp(min=0)
        inter = width * height
        iou = inter / (areas[index] + areas - inter).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def ensure_torchvision() -> None:
    """Define ``torchvision::nms``/``qnms`` when torchvision's compiled ops are missing."""
    global _done
    with _lock:
        if _done:
            return
        missing = [name for name in ("nms", "qnms") if not _operator_exists(name)]
        if missing:
            # Kept alive for the process: dropping a Library object unregisters its operators.
            library = torch.library.Library("torchvision", "FRAGMENT")
            for name in missing:
                library.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                library.impl(name, nms_reference, "CPU")
            _LIBRARIES.append(library)
            log.debug("defined CPU fallbacks for torchvision::%s", ", torchvision::".join(missing))
        _done = True


_LIBRARIES: list[torch.library.Library] = []
