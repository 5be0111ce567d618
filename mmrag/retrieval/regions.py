"""Region vectors: crops of an image around its boxes, embedded and stored as one multivector.

A whole-image CLIP vector blurs small objects; a crop around each detected or grounded box
gives the object a vector of its own, and MaxSim search finds an image by its best crop.

Boxes come from the payload that detection and grounding write back (every model's boxes at
once, so a second run over other labels adds to the first). A box is clipped to the image; one
left thinner than ``min_side_px`` (zero-area, outside the image, NaN) is skipped and counted;
past ``max_per_image`` only the best-scoring boxes are kept, and the report says how many were
cut. With ``grid`` set, an image with no usable box gets a fixed grid of crops instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmrag.config import LimitSettings, RegionSettings
from mmrag.errors import NotFound
from mmrag.retrieval.blobs import BlobStore
from mmrag.retrieval.decode import decode_image
from mmrag.retrieval.store import VectorStore

log = logging.getLogger(__name__)

GRID_LABEL = "grid"


class ImageEmbedder(Protocol):
    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class Region:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the original's pixels, clipped
    label: str
    score: float

    def payload(self) -> dict[str, Any]:
        return {"box": [round(v, 2) for v in self.box], "label": self.label, "score": self.score}


@dataclass(frozen=True)
class RegionPlan:
    regions: list[Region]
    skipped: int  # boxes with no area left inside the image
    capped: int  # usable boxes left out past the per-image cap
    below_score: int


@dataclass(frozen=True)
class RegionReport:
    image_id: str
    regions: int
    skipped: int
    capped: int
    below_score: int
    grid: bool

    def as_result(self) -> dict[str, Any]:
        return {
            "regions": self.regions,
            "skipped_boxes": self.skipped,
            "capped_boxes": self.capped,
            "grid": self.grid,
        }


def plan_regions(
    boxes: Sequence[Mapping[str, Any]], width: int, height: int, settings: RegionSettings
) -> RegionPlan:
    """The crops to embed for ``boxes`` on a ``width`` x ``height`` image."""
    usable: list[Region] = []
    skipped = below = 0
    for raw in boxes:
        score = _number(raw.get("score"))
        if score is None or score < settings.min_score:
            below += 1
            continue
        clipped = _clip(raw.get("box"), width, height, settings.min_side_px)
        if clipped is None:
            skipped += 1
            continue
        usable.append(Region(clipped, str(raw.get("label", "")), round(score, 4)))
    usable.sort(key=lambda region: -region.score)
    kept = usable[: settings.max_per_image]
    if not kept and settings.grid and not skipped:
        kept = grid_regions(width, height, settings.grid)
    return RegionPlan(kept, skipped, len(usable) - len(kept) if usable else 0, below)


def grid_regions(width: int, height: int, cells: int) -> list[Region]:
    """A ``cells`` x ``cells`` grid over the image, row by row."""
    regions = []
    for row in range(cells):
        for column in range(cells):
            box = (
                width * column / cells,
                height * row / cells,
                width * (column + 1) / cells,
                height * (row + 1) / cells,
            )
            regions.append(Region(box, GRID_LABEL, 0.0))
    return regions


def crop(image: Image.Image, region: Region, margin: float, scale: float = 1.0) -> Image.Image:
    """The region with ``margin`` of its own size around it, clipped to the image.

    ``scale`` maps the original's pixels to ``image``'s (a reduced decode). The embedder
    resizes and centre-crops it as it does any image.
    """
    x1, y1, x2, y2 = (v * scale for v in region.box)
    pad_x, pad_y = (x2 - x1) * margin, (y2 - y1) * margin
    left = max(0, math.floor(x1 - pad_x))
    top = max(0, math.floor(y1 - pad_y))
    right = min(image.width, math.ceil(x2 + pad_x))
    bottom = min(image.height, math.ceil(y2 + pad_y))
    return image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


class RegionIndexer:
    """Embeds an indexed image's regions and stores them; the embedder loads on first use."""

    def __init__(
        self,
        store: VectorStore,
        blobs: BlobStore,
        embedder: Callable[[], ImageEmbedder],
        settings: RegionSettings,
        limits: LimitSettings,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._embedder = embedder
        self.settings = settings
        self._limits = limits

    def index(self, image_id: str, payload: Mapping[str, Any] | None = None) -> RegionReport:
        """(Re)write the image's region vectors from the boxes its payload holds."""
        if payload is None:
            found = self._store.get([image_id])
            if image_id not in found:
                raise NotFound(f"no image with id {image_id}")
            payload = found[image_id]
        width, height = int(payload["width"]), int(payload["height"])
        plan = plan_regions(payload.get("boxes", []), width, height, self.settings)
        vectors = np.zeros((0, 0), dtype=np.float32)
        if plan.regions:
            decoded = decode_image(self._blobs.read("original", payload["sha256"]), self._limits)
            scale = decoded.image.width / max(width, 1)
            crops = [crop(decoded.image, r, self.settings.margin, scale) for r in plan.regions]
            vectors = self._embedder().embed_images(crops)
        self._store.set_regions(image_id, vectors, [region.payload() for region in plan.regions])
        report = RegionReport(
            image_id,
            regions=len(plan.regions),
            skipped=plan.skipped,
            capped=plan.capped,
            below_score=plan.below_score,
            grid=bool(plan.regions) and plan.regions[0].label == GRID_LABEL,
        )
        if plan.capped or plan.skipped:
            log.info(
                "regions of %s: %d kept, %d boxes past the cap of %d, %d with no area in the image",
                image_id,
                report.regions,
                plan.capped,
                self.settings.max_per_image,
                plan.skipped,
            )
        return report


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _clip(
    raw: Any, width: int, height: int, min_side: int
) -> tuple[float, float, float, float] | None:
    """The box clipped to the image, or None when it is malformed or too thin inside it."""
    if not isinstance(raw, list | tuple) or len(raw) != 4:
        return None
    values = [_number(v) for v in raw]
    if any(v is None for v in values):
        return None
    x1, y1, x2, y2 = (float(v) for v in values if v is not None)
    x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
    y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
    if x2 - x1 < min_side or y2 - y1 < min_side:
        return None
    return (x1, y1, x2, y2)
