"""Which embedder made a collection's vectors: every point records its spec and dimension,
and a service started with another embedder refuses to search the collection instead of
ranking new-model queries against old-model vectors (which would answer, wrongly, whenever
the two models happen to share a dimension)."""

from __future__ import annotations

from typing import Any

from mmrag.errors import DimensionMismatchError
from mmrag.retrieval.store import VectorStore

SPEC_FIELD = "embedder_spec"
DIM_FIELD = "embedder_dim"


def stamp(spec: str, dim: int) -> dict[str, Any]:
    """The payload fields that record what embedded a point."""
    return {SPEC_FIELD: spec, DIM_FIELD: dim}


def check_collection(store: VectorStore, spec: str, dim: int) -> None:
    """Raise :class:`DimensionMismatchError` when the collection's points were embedded by
    another model than ``spec``; points from before the fields existed are not judged."""
    for hit in store.scroll(batch=1):
        built_by = hit.payload.get(SPEC_FIELD)
        if built_by is not None and built_by != spec:
            raise DimensionMismatchError(
                f"the collection was embedded by {built_by} "
                f"({hit.payload.get(DIM_FIELD, '?')}-d), not the configured {spec} ({dim}-d): "
                f"to move to it, start with MMRAG_MODELS__EMBEDDER={built_by} and run "
                f"`mmrag reindex --embedder {spec}`"
            )
        return
