"""What the models saw, written back into the index.

A caption joins the image's ``text`` vector (the mean with any user captions) and its BM25
vector, so caption and hybrid search find it by what the model said. Boxes become
``labels`` (what was found) and ``counts`` (how many of each label asked for, zero
included), so filters like ``counts.person >= 2`` work; with a region indexer, the boxes'
crops become the image's region vectors.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mmrag.errors import MmragError, NotFound
from mmrag.retrieval import sparse
from mmrag.retrieval.regions import RegionIndexer
from mmrag.retrieval.store import VectorStore

log = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]
MAX_STORED_BOXES = 256  # per image: enough for any photo, bounded against runaway detectors


class TextEmbedder(Protocol):
    def embed_texts(self, texts: Sequence[str]) -> Vectors: ...


_COUNT_KEY_CHARS = 64


def count_key(label: str) -> str:
    """A label as a payload key under ``counts``: lower case, words joined by ``_``.

    Keys are bounded in length; a longer one is cut and ends in a hash of the whole, so two
    long labels that share their first 64 characters still count apart.
    """
    key = "_".join(re.findall(r"[a-z0-9]+", label.lower())) or "unlabelled"
    if len(key) <= _COUNT_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{key[: _COUNT_KEY_CHARS - 9]}_{digest}"


def normalise_label(label: str) -> str:
    return " ".join(label.lower().split())


class AnnotationWriter:
    def __init__(
        self,
        store: VectorStore,
        embedder: Callable[[], TextEmbedder],
        regions: RegionIndexer | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._regions = regions
        # Two annotations of one image at once would each merge into the payload they read.
        self._lock = threading.Lock()

    def apply_caption(self, image_id: str, caption: str, model: str, detail: str = "short") -> None:
        """Record a model's caption; ``detail`` (short, detailed) too, so a job asking for a
        detailed caption never takes a short one for it."""
        with self._lock:
            payload = self._payload(image_id)
            captions = [*payload.get("captions", []), caption]
            vectors = self._embedder().embed_texts(captions)
            mean = vectors.mean(axis=0)
            text_vector = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
            update: dict[str, Any] = {
                "model_caption": caption,
                "caption_model": model,
                "caption_detail": detail,
            }
            if not payload.get("caption"):
                update["caption"] = caption
            self._store.set_payload(image_id, update)
            self._store.set_text(image_id, text_vector, sparse.encode_document(captions))

    def apply_boxes(
        self, image_id: str, asked: Sequence[str], boxes: Sequence[dict[str, Any]], model: str
    ) -> None:
        """Record one grounding or detection run: ``asked`` labels, ``boxes`` found."""
        with self._lock:
            payload = self._payload(image_id)
            asked_labels = {normalise_label(label) for label in asked}
            found = [{**box, "label": normalise_label(str(box["label"]))} for box in boxes]
            counts = dict(payload.get("counts", {}))
            for label in asked_labels:
                counts[count_key(label)] = sum(1 for box in found if box["label"] == label)
            # Labels, boxes and counts of labels asked again are replaced (a label no longer
            # found leaves ``labels``); those of other labels are kept.
            kept_labels = [
                label for label in payload.get("labels", []) if label not in asked_labels
            ]
            labels = sorted({*kept_labels, *(box["label"] for box in found)})
            kept = [box for box in payload.get("boxes", []) if box["label"] not in asked_labels]
            every = [*kept, *({**box, "model": model} for box in found)]
            stored = every[:MAX_STORED_BOXES]
            self._store.set_payload(image_id, {"labels": labels, "counts": counts, "boxes": stored})
            if self._regions is not None and self._regions.settings.enabled:
                # All boxes, not the stored cut: the indexer keeps the best-scoring ones.
                self._index_regions(image_id, {**payload, "boxes": every})

    def _index_regions(self, image_id: str, payload: dict[str, Any]) -> None:
        """Region vectors follow the boxes; failing them loses no box (a ``regions`` job can
        add them later), so it is logged rather than failing the detection."""
        assert self._regions is not None
        try:
            self._regions.index(image_id, payload)
        except MmragError as error:
            log.warning("could not index the regions of %s: %s", image_id, error)

    def _payload(self, image_id: str) -> dict[str, Any]:
        found = self._store.get([image_id])
        if image_id not in found:
            raise NotFound(f"no image with id {image_id}")
        return found[image_id]
