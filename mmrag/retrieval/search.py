"""Search: turn a query (text or image) and a target into store queries.

| query | target ``image``   | target ``caption``    | target ``hybrid``                      |
|-------|-------------------|-----------------------|----------------------------------------|
| text  | CLIP text->images | CLIP text->captions   | text->images + BM25 on captions, RRF   |
| image | image->images     | image->captions       | refused: BM25 needs words              |

Target ``region`` finds images by their best-matching region (the crops of their boxes,
MaxSim); each hit names that region. Hybrid adds the regions as a third RRF arm (weighted by
``regions.fusion_weight``) once the collection holds any.

An image given by id is looked up in the store (no re-embedding) and left out of its own
results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmrag.config import LimitSettings
from mmrag.errors import InvalidInput, NotFound
from mmrag.models.clip.embedder import ClipEmbedder
from mmrag.retrieval import sparse
from mmrag.retrieval.store import (
    DenseVectorName,
    Filter,
    Hit,
    MatchValue,
    VectorStore,
)


class SearchTarget(StrEnum):
    IMAGE = "image"
    CAPTION = "caption"
    HYBRID = "hybrid"
    REGION = "region"


# While no image has regions, whether any appeared is asked again after this long.
_REGION_RECHECK_S = 5.0
NO_REGIONS = (
    "no image has region vectors yet: run detect or ground on the images, or a bulk job with "
    '{"task": "regions"} (or set MMRAG_REGIONS__GRID for grid crops)'
)


@dataclass(frozen=True)
class SearchQuery:
    """Exactly one of ``text``, ``image_id`` and ``image``."""

    text: str | None = None
    image_id: str | None = None
    image: Image.Image | None = None
    target: SearchTarget = SearchTarget.IMAGE
    limit: int = 10
    offset: int = 0
    filter: Filter = field(default_factory=Filter)


@dataclass(frozen=True)
class SearchResults:
    hits: list[Hit]
    encode_ms: float
    search_ms: float


class SearchService:
    def __init__(
        self,
        embedder: Callable[[], ClipEmbedder],
        store: VectorStore,
        limits: LimitSettings,
        region_weight: float = 0.0,
        region_floor: float | None = None,
    ) -> None:
        self._embedder = embedder  # resolved per call: the model loads on first use
        self._store = store
        self._limits = limits
        self._region_weight = region_weight
        self._region_floor = region_floor
        self._regions_seen = False
        self._regions_checked = -math.inf

    def has_regions(self) -> bool:
        """Whether any image has region vectors (once true, not asked again)."""
        now = time.monotonic()
        if not self._regions_seen and now - self._regions_checked >= _REGION_RECHECK_S:
            self._regions_checked = now
            self._regions_seen = self._store.count_regions() > 0
        return self._regions_seen

    def search(self, query: SearchQuery) -> SearchResults:
        self._check(query)
        started = time.perf_counter()
        # Taken first even for a search by image_id, which embeds nothing: taking it pins this
        # thread to the collection serving now (retrieval/switchable.py), else a reused thread
        # reads the vector and searches the collection it pinned last, stale after a swap.
        # Once loaded it is a cache lookup.
        embedder = self._embedder()
        vector, exclude = self._query_vector(query, embedder)
        encoded = time.perf_counter()
        store_filter = query.filter
        if exclude is not None:
            store_filter = Filter(store_filter.must, (*store_filter.must_not, exclude))
        using: DenseVectorName = "text" if query.target == SearchTarget.CAPTION else "image"
        if query.target == SearchTarget.HYBRID:
            assert query.text is not None  # _check refused hybrid without text
            hits = self._store.search_hybrid(
                vector,
                "image",
                sparse.encode_query(query.text),
                query.limit,
                query.offset,
                store_filter,
                region_weight=self._region_weight if self.has_regions() else 0.0,
                region_floor=self._region_floor,
            )
        elif query.target == SearchTarget.REGION:
            if not self.has_regions():
                raise NotFound(NO_REGIONS)
            hits = self._store.search_regions(vector, query.limit, query.offset, store_filter)
        else:
            hits = self._store.search(vector, using, query.limit, query.offset, store_filter)
        finished = time.perf_counter()
        return SearchResults(
            hits,
            encode_ms=(encoded - started) * 1000.0,
            search_ms=(finished - encoded) * 1000.0,
        )

    def _check(self, query: SearchQuery) -> None:
        given = sum(x is not None for x in (query.text, query.image_id, query.image))
        if given != 1:
            raise InvalidInput("give exactly one of text, image_id or an image")
        if query.text is not None and not query.text.strip():
            raise InvalidInput("the search text is empty")
        if query.text is not None and len(query.text) > self._limits.max_caption_chars:
            raise InvalidInput(
                f"the search text is over {self._limits.max_caption_chars} characters"
            )
        if not 1 <= query.limit <= self._limits.search_max_limit:
            raise InvalidInput(f"limit must be between 1 and {self._limits.search_max_limit}")
        if not 0 <= query.offset <= self._limits.search_max_offset:
            raise InvalidInput(f"offset must be between 0 and {self._limits.search_max_offset}")
        if query.target == SearchTarget.HYBRID and query.text is None:
            raise InvalidInput("hybrid search needs text: BM25 has no words to match in an image")

    def _query_vector(
        self, query: SearchQuery, embedder: ClipEmbedder
    ) -> tuple[npt.NDArray[np.float32], MatchValue | None]:
        if query.text is not None:
            return embedder.embed_texts([query.text])[0], None
        if query.image is not None:
            return embedder.embed_images([query.image])[0], None
        assert query.image_id is not None
        vector = self._store.get_vector(query.image_id, "image")
        if vector is None:
            raise NotFound(f"no image with id {query.image_id}")
        return vector, MatchValue("id", query.image_id)
