"""Region evidence in the agent: when a search names one object, its regions answer too.

A retrieve whose query names a small or specific object ("the blue triangle", "a tiny red
circle") also searches the region vectors, once the collection has any; the two rankings are fused
(weighted RRF, the region arm weighted as in hybrid search), and a hit found through a crop
carries that crop.

A later ``ground`` of the same phrase on such a hit needs no model call when the crop matched
strongly and was found as that phrase: its stored box is the answer, cited as is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mmrag.agents.intent import normalise
from mmrag.retrieval.annotations import normalise_label
from mmrag.retrieval.store import Hit
from mmrag.retrieval.store_common import RRF_K

# "small", "tiny" and their kin, in the planner's four languages.
_SMALL = re.compile(r"\b(?:small|tiny|little|petite?s?|kleine?[nrs]?|pequen[oa]s?)\b")
_MAX_OBJECT_WORDS = 3  # "red circle", "black cat collar": a thing, not a scene


def names_an_object(query: str) -> bool:
    """Whether a search text names one small or specific object rather than a scene."""
    clean = normalise(query)
    return bool(_SMALL.search(clean)) or 0 < len(clean.split()) <= _MAX_OBJECT_WORDS


def merge_hits(
    images: Sequence[Hit], regions: Sequence[Hit], limit: int, region_weight: float
) -> list[Hit]:
    """Image hits and region hits in one ranking, by weighted reciprocal rank fusion (as the
    store fuses hybrid search: whole-image and crop cosines are not on one scale).

    A hit keeps its cosine as its score (the image's, or its best crop's if found only by its
    regions), so "how close is the best match" still reads as a similarity; a hit found by
    its regions keeps the region that matched.
    """
    fused: dict[str, float] = {}
    for weight, hits in ((1.0, images), (region_weight, regions)):
        for rank, hit in enumerate(hits):
            fused[hit.image_id] = fused.get(hit.image_id, 0.0) + weight / (RRF_K + rank + 1)
    merged: dict[str, Hit] = {hit.image_id: hit for hit in images}
    for hit in regions:
        seen = merged.get(hit.image_id)
        merged[hit.image_id] = Hit(
            hit.image_id,
            hit.score if seen is None else seen.score,
            hit.payload if seen is None else seen.payload,
            hit.region,
        )
    ranked = sorted(merged.values(), key=lambda hit: -fused[hit.image_id])
    return ranked[:limit]


def retrieved_regions(outputs: Sequence[Sequence[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The crop each image was retrieved by in this turn's earlier steps, by image id."""
    return {
        out["image_id"]: out["region"]
        for step in outputs
        for out in step
        if isinstance(out.get("region"), dict)
    }


def region_box(region: dict[str, Any] | None, phrase: str, strong: float) -> dict[str, Any] | None:
    """The stored box as a grounding output, when the region is a strong match for ``phrase``."""
    if region is None or float(region.get("match", 0.0)) < strong:
        return None
    if normalise_label(str(region.get("label", ""))) != normalise_label(phrase):
        return None
    return {
        "label": normalise_label(phrase),
        "score": round(float(region["score"]), 4),
        "box": [round(float(v), 1) for v in region["box"]],
    }
