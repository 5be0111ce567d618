"""Re-embed a collection with another embedder into a new collection, from the originals.

Each point's original is read from the blob store and embedded again (image, and the mean of
its captions as ingest makes it); payloads are copied with the new embedder recorded. Points
already in the target are skipped, so a re-index killed or cancelled half-way resumes where it
stopped. :func:`catch_up` then copies what was ingested meanwhile and removes what was deleted,
and runs with ingest held off, just before the switch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from mmrag.config import LimitSettings
from mmrag.errors import MmragError
from mmrag.retrieval import sparse
from mmrag.retrieval.blobs import BlobStore
from mmrag.retrieval.decode import decode_image
from mmrag.retrieval.ingest import ImageTextEmbedder, Vectors
from mmrag.retrieval.provenance import DIM_FIELD, SPEC_FIELD, stamp
from mmrag.retrieval.regions import Region, crop
from mmrag.retrieval.store import REGIONS_FIELD, Hit, ImagePoint, VectorStore

log = logging.getLogger(__name__)

ReindexProgress = Callable[[int, int], None]  # (points done, points in the source)


class ReindexCancelled(MmragError):
    """The re-index was cancelled; what it wrote stays, and a new run resumes from there."""

    title = "Re-index cancelled"


@dataclass
class ReindexCounts:
    copied: int = 0  # re-embedded in this run
    skipped: int = 0  # already in the target (an earlier run's)
    failed: int = 0  # original missing or undecodable: left out, logged
    removed: int = 0  # deleted from the source meanwhile, removed from the target


@dataclass(frozen=True)
class Reindexer:
    source: VectorStore
    target: VectorStore
    embedder: ImageTextEmbedder
    spec: str
    blobs: BlobStore
    limits: LimitSettings
    batch: int = 32
    # The crop margin region vectors were made with (RegionSettings.margin): a point's stored
    # regions are cropped and embedded again with the new embedder, so they match it too.
    region_margin: float = 0.15

    def run(
        self, cancel: threading.Event | None = None, progress: ReindexProgress | None = None
    ) -> ReindexCounts:
        """Copy every source point missing from the target; checks ``cancel`` between
        batches (raising :class:`ReindexCancelled`)."""
        counts = ReindexCounts()
        total = self.source.count()
        page: list[Hit] = []
        for hit in self.source.scroll(batch=self.batch):
            page.append(hit)
            if len(page) == self.batch:
                self._copy(page, counts, cancel)
                page = []
                if progress is not None:
                    progress(counts.copied + counts.skipped + counts.failed, total)
        if page:
            self._copy(page, counts, cancel)
        if progress is not None:
            progress(counts.copied + counts.skipped + counts.failed, total)
        return counts

    def catch_up(self) -> ReindexCounts:
        """Bring the target level with the source after :meth:`run`: copy what the source
        gained, drop what it lost, and copy again what changed since it was copied (captions
        or labels a job wrote, tenants granted). Callers hold every write off meanwhile, so
        that the two collections agree at the switch."""
        source = {hit.image_id: hit.payload for hit in self.source.scroll(batch=256)}
        copied = {hit.image_id: hit.payload for hit in self.target.scroll(batch=256)}
        gone = [image_id for image_id in copied if image_id not in source]
        stale = [
            image_id
            for image_id, payload in copied.items()
            if image_id in source and _unstamped(payload) != _unstamped(source[image_id])
        ]
        if gone or stale:
            self.target.delete([*gone, *stale])
        counts = self.run()
        counts.removed = len(gone)
        return counts

    def _copy(
        self, page: Sequence[Hit], counts: ReindexCounts, cancel: threading.Event | None
    ) -> None:
        if cancel is not None and cancel.is_set():
            raise ReindexCancelled("the re-index was cancelled; run it again to resume")
        done = self.target.existing([hit.image_id for hit in page])
        counts.skipped += len(done)
        todo = [hit for hit in page if hit.image_id not in done]
        prepared = []
        for hit in todo:
            try:
                raw = self.blobs.read("original", str(hit.payload["sha256"]))
                image = decode_image(raw, self.limits).image
            except (MmragError, KeyError) as error:
                log.warning("re-index leaves out %s: %s", hit.image_id, error)
                counts.failed += 1
                continue
            prepared.append((hit, image))
        if not prepared:
            return
        image_vectors = self.embedder.embed_prepared(
            [self.embedder.prepare_image(image) for _, image in prepared]
        )
        text_vectors = self._caption_vectors([hit for hit, _ in prepared])
        marks = {
            **stamp(self.spec, self.embedder.dim),
            "embedding": self.embedder.serving.as_payload(),
        }
        points = []
        for (hit, _), vector in zip(prepared, image_vectors, strict=True):
            captions = caption_texts(hit.payload)
            points.append(
                ImagePoint(
                    image_id=hit.image_id,
                    image_vector=vector,
                    payload={**hit.payload, **marks},
                    text_vector=text_vectors.get(hit.image_id),
                    sparse=sparse.encode_document(captions) if captions else None,
                )
            )
        self.target.upsert(points)
        for hit, image in prepared:
            self._copy_regions(hit, image)
        counts.copied += len(points)

    def _copy_regions(self, hit: Hit, image: Image.Image) -> None:
        stored = hit.payload.get(REGIONS_FIELD)
        if not isinstance(stored, list) or not stored:
            return
        regions = [Region(tuple(r["box"]), str(r["label"]), float(r["score"])) for r in stored]
        scale = image.width / max(int(hit.payload.get("width") or image.width), 1)
        crops = [crop(image, region, self.region_margin, scale) for region in regions]
        crops_prepared = [self.embedder.prepare_image(c) for c in crops]
        vectors = self.embedder.embed_prepared(crops_prepared)
        self.target.set_regions(hit.image_id, vectors, stored)

    def _caption_vectors(self, hits: Sequence[Hit]) -> dict[str, Vectors]:
        """The normalised mean of each point's caption vectors, as ingest makes them."""
        captions = {hit.image_id: caption_texts(hit.payload) for hit in hits}
        texts = [text for group in captions.values() for text in group]
        if not texts:
            return {}
        vectors = self.embedder.embed_texts(texts)
        result: dict[str, Vectors] = {}
        start = 0
        for image_id, group in captions.items():
            if group:
                mean = vectors[start : start + len(group)].mean(axis=0)
                result[image_id] = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(
                    np.float32
                )
                start += len(group)
        return result


def _unstamped(payload: dict[str, object]) -> dict[str, object]:
    made_by = (SPEC_FIELD, DIM_FIELD, "embedding")
    return {key: value for key, value in payload.items() if key not in made_by}


def caption_texts(payload: Mapping[str, Any]) -> list[str]:
    """The texts a point's caption vectors stand for: its captions, and the caption a model
    wrote for it (mmrag/retrieval/annotations.py embeds that too)."""
    captions = payload.get("captions")
    texts = [str(text) for text in captions] if isinstance(captions, list) else []
    model_caption = payload.get("model_caption")
    if isinstance(model_caption, str) and model_caption:
        texts.append(model_caption)
    return texts
