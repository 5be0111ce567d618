"""What both store backends share: input checks, payload normalisation, fusion constants.

Keeping these in one place is what makes the two backends answer the same query the same way
(same refusals, same RRF constant, same candidate depth).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mmrag.errors import InvalidInput
from mmrag.retrieval.store import (
    REGIONS_FIELD,
    DenseVectorName,
    Filter,
    MatchAny,
    MatchValue,
    SparseVector,
    image_id_of,
    point_id,
)

# Qdrant's own default RRF constant (score = 1 / (k + rank)); the edge binding needs it spelled
# out, the server applies it when FusionQuery(RRF) names none, so both backends fuse alike.
RRF_K = 2

# Each branch of a hybrid query fetches this many times the requested depth, so that a point
# ranked moderately in both branches can still surface after fusion.
HYBRID_CANDIDATE_FACTOR = 3
HYBRID_MIN_CANDIDATES = 30

# Filtered searches whose candidates hold less than this many KiB of vectors scan those
# candidates instead of walking the graph (Qdrant's default; 10 MiB = 5,000 512-d vectors).
# Both backends configure their HNSW index with it.
FULL_SCAN_THRESHOLD_KB = 10_000


def hybrid_candidates(limit: int, offset: int) -> int:
    return max(HYBRID_MIN_CANDIDATES, (limit + offset) * HYBRID_CANDIDATE_FACTOR)


def checked_point_id(image_id: str) -> str:
    """The stored (UUID) id of ``image_id``; a malformed id is the caller's mistake."""
    try:
        return point_id(image_id)
    except ValueError as error:
        raise InvalidInput(f"not an image id: {image_id!r}") from error


def check_page(limit: int, offset: int) -> None:
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, got {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must not be negative, got {offset}")


def checked_dense(vector: npt.ArrayLike, dim: int, name: str) -> npt.NDArray[np.float32]:
    """A one-dimensional float32 copy of ``vector``, refused unless it has ``dim`` finite values.

    Checked here rather than by the engine so that both backends give the same plain message.
    """
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] != dim:
        raise InvalidInput(f"{name} vector must have shape ({dim},), got {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidInput(f"{name} vector holds NaN or infinite values")
    return np.ascontiguousarray(array)


def checked_sparse(vector: SparseVector) -> SparseVector:
    if len(vector.indices) != len(vector.values):
        raise InvalidInput("sparse vector: indices and values differ in length")
    if len(set(vector.indices)) != len(vector.indices):
        raise InvalidInput("sparse vector: repeated indices")
    if any(index < 0 for index in vector.indices):
        raise InvalidInput("sparse vector: negative index")
    if not all(math.isfinite(value) for value in vector.values):
        raise InvalidInput("sparse vector: NaN or infinite weight")
    return vector


def json_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with datetimes written as RFC 3339 strings (what datetime indexes parse).

    Neither backend takes datetime objects as payload values; converting them here means a
    caller that passes ``created=datetime.now(UTC)`` gets a filterable field, not an error.
    """
    return {key: _json_value(value) for key, value in payload.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, Mapping):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value


def utc_iso(moment: datetime) -> str:
    """RFC 3339 in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def check_filter(filter: Filter | None) -> None:
    """Refuse conditions one backend could not express, so that neither accepts them."""
    if filter is None:
        return
    for condition in (*filter.must, *filter.must_not):
        if isinstance(condition, MatchAny):
            kinds = {_any_kind(value) for value in condition.values}
            if not condition.values:
                raise InvalidInput(f"filter on {condition.key!r}: match-any needs values")
            if len(kinds) > 1 or "bool" in kinds:
                raise InvalidInput(
                    f"filter on {condition.key!r}: match-any takes all strings or all integers"
                )
        elif isinstance(condition, MatchValue) and isinstance(condition.value, float):
            raise InvalidInput(f"filter on {condition.key!r}: match a float with a range")


def _any_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "str"


class StoredRecord(Protocol):
    """A point as either engine hands it back (``qdrant_edge.Record``, ``models.Record``)."""

    @property
    def id(self) -> Any: ...

    @property
    def payload(self) -> Any: ...

    @property
    def vector(self) -> Any: ...


class RecordReads(ABC):
    """The reads by id, answered alike by both backends from one engine-specific retrieve."""

    @abstractmethod
    def _records(
        self, image_ids: Sequence[str], *, payload: bool, vectors: bool | list[str]
    ) -> Sequence[StoredRecord]: ...

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        records = self._records(image_ids, payload=True, vectors=False)
        return {image_id_of(str(record.id)): dict(record.payload or {}) for record in records}

    def get_vector(self, image_id: str, name: DenseVectorName) -> npt.NDArray[np.float32] | None:
        records = self._records([image_id], payload=False, vectors=[name])
        vectors = records[0].vector if records else None
        vector = vectors.get(name) if isinstance(vectors, dict) else None
        if not isinstance(vector, list):
            return None
        return np.asarray(vector, dtype=np.float32)

    def existing(self, image_ids: Sequence[str]) -> set[str]:
        records = self._records(image_ids, payload=False, vectors=False)
        return {image_id_of(str(record.id)) for record in records}


def checked_regions(
    vectors: npt.ArrayLike, regions: Sequence[Mapping[str, Any]], dim: int
) -> list[list[float]]:
    """Region rows as lists, refused unless there is one ``dim``-wide finite row per region."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.size == 0 and not regions:
        return []
    if array.ndim != 2 or array.shape[1] != dim:
        raise InvalidInput(f"region vectors must have shape (n, {dim}), got {array.shape}")
    if array.shape[0] != len(regions):
        raise InvalidInput(f"{array.shape[0]} region vectors for {len(regions)} regions")
    if not np.isfinite(array).all():
        raise InvalidInput("region vectors hold NaN or infinite values")
    return array.tolist()  # type: ignore[no-any-return]


def best_region(
    query: npt.NDArray[np.float32], stored: Any, payload: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The payload's region whose vector is closest to ``query``, with that cosine as ``match``.

    Neither engine says which vector of a multivector won MaxSim, so it is worked out here from
    the point's region vectors (a handful of rows per hit).
    """
    regions = payload.get(REGIONS_FIELD)
    if not isinstance(stored, list) or not stored or not isinstance(regions, list):
        return None
    rows = np.asarray(stored, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] != len(regions):
        return None
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    unit = query / max(float(np.linalg.norm(query)), 1e-12)
    similarities = rows @ unit
    best = int(np.argmax(similarities))
    return {**regions[best], "match": round(float(similarities[best]), 4)}


def fusion_weights(region_weight: float) -> list[float] | None:
    """RRF weights of a hybrid query's arms (dense, sparse[, region]); None: equal, two arms."""
    if region_weight < 0 or not math.isfinite(region_weight):
        raise InvalidInput(f"region weight must be a finite number >= 0, got {region_weight}")
    return None if region_weight == 0 else [1.0, 1.0, region_weight]
