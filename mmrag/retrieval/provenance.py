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


def recorded_embedder(store: VectorStore) -> tuple[str, int | None] | None:
    """The spec (and dimension) a collection's points record; None for an empty collection
    or points from before the fields existed."""
    for hit in store.scroll(batch=1):
        built_by = hit.payload.get(SPEC_FIELD)
        if not isinstance(built_by, str):
            return None
        dim = hit.payload.get(DIM_FIELD)
        return built_by, dim if isinstance(dim, int) else None
    return None


def check_collection(store: VectorStore, spec: str, dim: int) -> None:
    """Raise :class:`DimensionMismatchError` when the collection's points were embedded by
    another model than ``spec``; points from before the fields existed are not judged."""
    recorded = recorded_embedder(store)
    if recorded is None or recorded[0] == spec:
        return
    built_by, built_dim = recorded
    raise DimensionMismatchError(
        f"the collection was embedded by {built_by} ({built_dim or '?'}-d), not the configured "
        f"{spec} ({dim}-d): `mmrag serve` re-embeds it in the background while it serves the "
        f"old one; or start with MMRAG_MODELS__EMBEDDER={built_by} and run "
        f"`mmrag reindex --embedder {spec}`"
    )
