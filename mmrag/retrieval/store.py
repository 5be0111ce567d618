"""The vector store interface. Backends: ``store_edge`` (in-process) and ``store_qdrant`` (server).

One collection holds one point per image. Its named vectors:

- ``image``: the CLIP image embedding;
- ``text``: the CLIP text embedding of the image's caption (absent until a caption exists);
- ``caption_sparse``: BM25 term weights of the captions (IDF applied by the engine);
- ``region``: CLIP embeddings of crops of the image (its detected boxes, or a grid), one
  multivector compared by MaxSim (absent until regions were indexed); the payload's
  ``regions`` lists each crop's box, label and score in the same order.

Point ids are the image id (32 hex digits of the SHA-256 of its bytes) written as a UUID,
so the same bytes never make two points.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

IMAGE_VECTOR = "image"
TEXT_VECTOR = "text"
SPARSE_VECTOR = "caption_sparse"
REGION_VECTOR = "region"
REGIONS_FIELD = "regions"  # payload: the crops' boxes, labels and scores, in vector order
DenseVectorName = Literal["image", "text"]

FieldKind = Literal["keyword", "integer", "datetime", "text", "bool"]
# Payload fields with an index, and the kind of index each gets.
INDEXED_FIELDS: dict[str, FieldKind] = {
    "id": "keyword",
    "labels": "keyword",
    "source.kind": "keyword",
    "tenant": "keyword",  # retrieval/tenants.py: whose point it is
    "tenant_scoped": "bool",  # ... and the default tenant's filter, measured: bench/tenant_filter
    "format": "keyword",
    "width": "integer",
    "height": "integer",
    "created": "datetime",
}
# The fields whose every value gets its own small HNSW graph (``hnsw.payload_m`` links), so a
# filter that keeps a few percent of the points still walks to their nearest ones. The other
# indexed fields filter through their index alone: a graph per value of every field made the
# build several times dearer (bench/million), and their filters either keep few points, which
# the engine then scans (an id, a narrow range), or many, which the main graph serves.
FILTER_GRAPH_FIELDS = frozenset({"tenant", "labels"})


def point_id(image_id: str) -> str:
    """The UUID form a backend stores for an image id."""
    return str(uuid.UUID(hex=image_id))


def image_id_of(stored_id: str | int) -> str:
    return uuid.UUID(str(stored_id)).hex


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@dataclass
class ImagePoint:
    """One image as written to the store."""

    image_id: str
    image_vector: npt.NDArray[np.float32]
    payload: dict[str, Any]
    text_vector: npt.NDArray[np.float32] | None = None
    sparse: SparseVector | None = None


@dataclass(frozen=True)
class Hit:
    image_id: str
    score: float
    payload: dict[str, Any]
    # The crop that matched a region query best: its box, label, detector score and
    # similarity (``match``); None when the hit did not come through its regions.
    region: dict[str, Any] | None = None


# -- filters: a neutral condition tree each backend translates -------------------------------


@dataclass(frozen=True)
class MatchValue:
    key: str
    value: str | int | bool


@dataclass(frozen=True)
class MatchAny:
    key: str
    values: tuple[str | int, ...]


@dataclass(frozen=True)
class NumberRange:
    key: str
    gte: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class DateRange:
    key: str
    gte: datetime | None = None
    lte: datetime | None = None


Condition = MatchValue | MatchAny | NumberRange | DateRange


@dataclass(frozen=True)
class Filter:
    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must or self.must_not)


def filters_without_graphs(filter: Filter | None) -> bool:
    """Whether ``filter`` restricts a field that has no per-value graphs (FILTER_GRAPH_FIELDS).

    Such a filter keeping a few percent of the points strands the graph walk among nodes it
    rejects (recall@10 0.87 at 100k, bench/million); ACORN steps over them to their neighbours'
    neighbours (1.0), at 3-5x the latency, so only these filters pay for it: on the fields with
    graphs it only made searches slower.
    """
    if filter is None:
        return False
    return any(c.key not in FILTER_GRAPH_FIELDS for c in (*filter.must, *filter.must_not))


@dataclass(frozen=True)
class StoreInfo:
    points: int
    indexed_vectors: int
    segments: int
    backend: str
    extra: dict[str, Any] = field(default_factory=dict)


class VectorStore(Protocol):
    """What the service needs from a vector store. Every method is thread-safe."""

    backend_name: str

    def ensure_collection(self, dim: int) -> None:
        """Create the collection and its payload indexes if missing; check the dimension."""
        ...

    def upsert(self, points: Sequence[ImagePoint]) -> None: ...

    def set_payload(self, image_id: str, payload: dict[str, Any]) -> None:
        """Merge ``payload`` into an existing point's payload."""
        ...

    def set_text(
        self, image_id: str, text_vector: npt.NDArray[np.float32], sparse: SparseVector
    ) -> None:
        """Replace a point's caption vectors (after a caption changed)."""
        ...

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Payloads of the ids that exist."""
        ...

    def get_vector(
        self, image_id: str, name: DenseVectorName
    ) -> npt.NDArray[np.float32] | None: ...

    def existing(self, image_ids: Sequence[str]) -> set[str]: ...

    def delete(self, image_ids: Sequence[str]) -> None: ...

    def search(
        self,
        vector: npt.NDArray[np.float32],
        using: DenseVectorName,
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]: ...

    def search_sparse(
        self, vector: SparseVector, limit: int, offset: int = 0, filter: Filter | None = None
    ) -> list[Hit]: ...

    def search_hybrid(
        self,
        dense: npt.NDArray[np.float32],
        using: DenseVectorName,
        sparse: SparseVector,
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
        region_weight: float = 0.0,
        region_floor: float | None = None,
    ) -> list[Hit]:
        """Dense and sparse candidates fused with reciprocal rank fusion; a positive
        ``region_weight`` adds the dense query's region matches as a third, weighted arm,
        holding only images whose best crop scores at least ``region_floor``."""
        ...

    def set_regions(
        self,
        image_id: str,
        vectors: npt.NDArray[np.float32],
        regions: Sequence[dict[str, Any]],
    ) -> None:
        """Replace a point's region multivector (``vectors``: one row per region) and its
        payload's ``regions``; no rows removes both."""
        ...

    def search_regions(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        offset: int = 0,
        filter: Filter | None = None,
    ) -> list[Hit]:
        """Images by their best-matching region (MaxSim); each hit names that region."""
        ...

    def count_regions(self, filter: Filter | None = None) -> int:
        """How many images (matching ``filter``) have region vectors."""
        ...

    def count(self, filter: Filter | None = None) -> int: ...

    def scroll(self, filter: Filter | None = None, batch: int = 256) -> Iterator[Hit]: ...

    def optimize(self) -> bool:
        """Build pending indexes (HNSW); True when anything was built."""
        ...

    def info(self) -> StoreInfo: ...

    def close(self) -> None: ...
