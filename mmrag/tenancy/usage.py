"""What a tenant holds: images and their original bytes, read from its view of the store."""

from __future__ import annotations

from dataclasses import dataclass

from mmrag.retrieval.store import VectorStore


@dataclass(frozen=True)
class Usage:
    images: int
    bytes: int


def usage_of(view: VectorStore) -> Usage:
    """One pass over the tenant's points (payloads only). Qdrant has no sum aggregation, so
    bytes cost a scroll: fine for an admin listing and a quota check on upload at the sizes
    tenants hold here; a counter kept beside the key store is the next step past that."""
    images = 0
    total = 0
    for hit in view.scroll():
        images += 1
        total += int(hit.payload.get("bytes", 0))
    return Usage(images, total)
